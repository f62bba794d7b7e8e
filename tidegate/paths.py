"""Request paths: one canonical form, matched and forwarded alike.

A route is a trust boundary: the service behind it may trust that whatever
tidegate forwards lies under the route's prefix (queued routes) or under the
upstream's base path (proxy routes). That only holds if the path that is
matched is the very path that is forwarded, and if nothing in it can be
resolved into something else further down the line. So, like Envoy's
``normalize_path`` with ``path_with_escaped_slashes_action: REJECT_REQUEST``
and nginx's ``merge_slashes``, a path is either brought into one canonical form
or refused:

- refused: a segment that is ``.`` or ``..`` once percent-decoded (``%2e``,
  ``%2E%2e``, ...) and stripped of its path parameters (``..;x``,
  ``%2e%2e;``, ``..%3B``: servlet containers drop ``;...`` before they
  resolve dot segments), an encoded ``/`` or ``\\`` (``%2f``, ``%5C``), a raw
  backslash, a NUL or any other control character (raw or encoded), a
  malformed escape (``%zz``, a lone ``%``). Each check is applied to every
  level of decoding, so a double-encoded ``%252e%252e`` is refused as well:
  an upstream or a proxy behind it that decodes once more must not find a
  traversal either;
- canonical: repeated slashes are merged, escapes of unreserved characters
  are decoded (``%6Frders`` is ``orders``), the other escapes are upper-case.

The canonical path stays percent-encoded: it is what the gateway matches
against route prefixes, stores in the job and what the relay and the proxy put
on the wire, byte for byte. The query string is forwarded as it came.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
MAX_DECODE_LEVELS = 4
"""Decoding levels checked for a hidden traversal (``%25`` nested this deep)."""


class UnsafePath(ValueError):
    """The path is refused; the message says why, for the client."""


def _decoded(segment: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _is_dots(segment: str) -> bool:
    """``.`` or ``..``, once its path parameters (``;...``) are dropped: Tomcat,
    Jetty and Spring drop them before resolving, so ``..;x`` is ``..`` there."""
    return segment.partition(";")[0] in (".", "..")


def _check_segment(segment: str) -> None:
    """Refuse a segment that hides a traversal at any level of decoding."""
    if "%" not in segment:  # one level only (a raw slash or backslash cannot be in it)
        if _is_dots(segment):
            raise UnsafePath("a dot segment ('.' or '..'), percent-encoded or not")
        if _has_control(segment):
            raise UnsafePath("a NUL or another control character")
        return
    if _BAD_PERCENT.search(segment):
        raise UnsafePath("a malformed percent-escape")
    level = segment
    for _ in range(MAX_DECODE_LEVELS):
        decoded = _decoded(level)
        if _is_dots(decoded):
            raise UnsafePath("a dot segment ('.' or '..'), percent-encoded or not")
        if "/" in decoded or "\\" in decoded:
            raise UnsafePath("an encoded slash or backslash ('%2F', '%5C')")
        if _has_control(decoded):
            raise UnsafePath("a NUL or another control character")
        if decoded == level:
            return
        level = decoded
    raise UnsafePath("percent-escapes nested too deep")


def _canonical_escape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    return chr(code) if code in _UNRESERVED else "%" + match.group(1).upper()


def canonical_path(raw: str) -> str:
    """The canonical form of a raw (still encoded) request path; UnsafePath if refused."""
    if not raw.startswith("/"):
        raise UnsafePath("a path that does not start with '/'")
    if "\\" in raw:
        raise UnsafePath("a backslash")
    if not raw.isascii():
        raise UnsafePath("characters outside ASCII (percent-encode them)")
    kept = []
    for segment in raw.split("/")[1:]:
        if not segment:
            continue  # merged slashes
        _check_segment(segment)
        kept.append(_ESCAPE.sub(_canonical_escape, segment) if "%" in segment else segment)
    path = "/" + "/".join(kept)
    if kept and raw.endswith("/"):
        path += "/"
    return path


def under_prefix(prefix: str, path: str) -> bool:
    """Whether a canonical ``path`` lies under ``prefix``, on a segment boundary.

    ``/orders`` takes ``/orders``, ``/orders/7``, not ``/ordersfoo``; a prefix
    ending in ``/`` takes itself with or without the slash.
    """
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")
