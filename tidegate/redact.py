"""Secrets never reach a log line, a status page or an error message.

A URL may carry credentials in its userinfo (``redis://:PASSWORD@host``,
``http://user:token@svc``); every URL the project prints goes through
``redact_url`` first, which keeps the user name (useful when reading a log)
and replaces the password. A string that does not parse as a URL is returned
unchanged only when it holds no ``@``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK if "@" in url else url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    # A lone token in the user part (``https://TOKEN@host``) is a secret too.
    userinfo = f"{user}:{MASK}" if has_password else MASK
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{hostport}"))
