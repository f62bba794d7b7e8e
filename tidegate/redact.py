"""Secrets never reach a log line, a status page or an error message.

A URL may carry credentials in its userinfo (``redis://:PASSWORD@host``,
``http://user:token@svc``) and in its query (``redis://host/0?password=...``,
which redis-py accepts; ``?token=...``, ``?api_key=...``). Every URL the
project prints goes through ``redact_url`` first, which keeps the user name
(useful when reading a log) and the names of the query's parameters, and
replaces the password, a lone token in the user part, and the value of every
query parameter whose name says it holds a secret (``SECRET_PARAMETERS``, in
any case, ``-`` or ``_`` alike, and as a part of a longer name such as
``client_secret`` or ``sentinel_password``). A string that does not parse as
a URL is returned unchanged only when it holds neither ``@`` nor ``?``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

SECRET_PARAMETERS = ("password", "passwd", "pass", "pwd", "token", "secret", "key", "auth",
                     "credential", "signature", "sig")  # fmt: skip
"""Words that make a query parameter's value a secret."""

_SECRET_NAME = re.compile(
    r"(^|[-_.])(" + "|".join(SECRET_PARAMETERS) + r")s?($|[-_.])|(" + "|".join(SECRET_PARAMETERS)
    + r")$",
    re.IGNORECASE,
)  # fmt: skip


def _secret_name(name: str) -> bool:
    """Whether a query parameter's name says its value is a secret:
    ``password``, ``auth_token``, ``client-secret``, ``apikey``, ``X-Sig``."""
    return _SECRET_NAME.search(name) is not None


def _redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        parts.append(f"{name}={MASK}" if eq and _secret_name(name) else item)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its credentials (userinfo password, secret query values)
    replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK if "@" in url or "?" in url else url
    if parts.query:
        parts = parts._replace(query=_redact_query(parts.query))
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        # A lone token in the user part (``https://TOKEN@host``) is a secret too.
        userinfo = f"{user}:{MASK}" if has_password else MASK
        parts = parts._replace(netloc=f"{userinfo}@{hostport}")
    return urlunsplit(parts)
