"""Screening: what every public request must pass before anything reads it.

Run by the problem boundary ahead of routing, for the job API as for routes:
the header block's size (431), every header value being UTF-8 (400), and the
path (400 unless it has a canonical form, ``tidegate.paths``). The canonical
path is what routing matches and what is forwarded.
"""

from __future__ import annotations

from aiohttp import web

from gateway.http_headers import check_header_values, header_bytes
from gateway.rejections import Kind, Rejection
from tidegate.paths import UnsafePath, canonical_path


def screen(request: web.Request, max_header_bytes: int) -> str:
    """The request's canonical path; Rejection when the request is refused."""
    if header_bytes(request.raw_headers) > max_header_bytes:
        raise Rejection(
            Kind.HEADERS_TOO_LARGE,
            "Request header fields too large",
            f"The request's headers exceed {max_header_bytes} bytes in all.",
        )
    check_header_values(request)
    try:
        return canonical_path(request.rel_url.raw_path)
    except UnsafePath as e:
        raise Rejection(
            Kind.UNSAFE_PATH,
            "Path refused",
            f"The request path holds {e}; such paths are refused, never resolved.",
        ) from None
