"""Reading a request body within its limits: size and the pace it arrives at.

One reader serves every path that takes a body (queued admission reads it
whole, the proxy streams it on): a body larger than the route's
``max_body_bytes`` is refused as soon as it passes the limit, and a body that
stalls longer than ``gateway.body_timeout_s`` between two chunks is refused as
too slow (408), so a client sending a byte now and then cannot hold a
connection and a handler for as long as it likes. Both end the connection:
the rest of the body is never read. Bodies are read as the client sent them
(no decompression); a ``Content-Encoding`` the gateway can check is checked
on the way (``gateway.encoding``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.hdrs import CONTENT_ENCODING

from gateway.encoding import BodyCheck, check_whole
from gateway.rejections import body_timeout, body_too_large


def refuse_declared(request: web.Request, route: str, limit_bytes: int) -> None:
    """Refuse a body whose declared length is over the limit, before reading any."""
    declared = request.content_length
    if declared is not None and declared > limit_bytes:
        raise body_too_large(route, limit_bytes)


async def body_chunks(
    request: web.Request, route: str, limit_bytes: int, stall_timeout_s: float
) -> AsyncIterator[bytes]:
    """The body's chunks as they come, as sent; Rejection when too large, too
    slow, or not what its ``Content-Encoding`` says (checked as it passes,
    ``gateway.encoding``; the last chunk is held back until the check ends)."""
    refuse_declared(request, route, limit_bytes)
    check = BodyCheck.of(route, request.headers.get(CONTENT_ENCODING), limit_bytes)
    total = 0
    content = request.content
    held = b""
    while True:
        try:
            async with asyncio.timeout(stall_timeout_s):
                chunk = await content.readany()
        except TimeoutError:
            raise body_timeout(route, stall_timeout_s) from None
        if not chunk:
            if check is not None:
                check.finish()
            if held:
                yield held
            return
        total += len(chunk)
        if total > limit_bytes:
            raise body_too_large(route, limit_bytes)
        if check is None:
            yield chunk
            continue
        check.feed(chunk)
        if held:
            yield held
        held = chunk


async def read_body(
    request: web.Request, route: str, limit_bytes: int, stall_timeout_s: float
) -> bytes:
    """The whole body, read within the limits of ``body_chunks``.

    A body that has arrived whole already (a small request usually comes in
    the packet of its head) is taken as it is: no waiting, so no timer."""
    if not request.body_exists:
        return b""
    content = request.content
    if content.is_eof():
        refuse_declared(request, route, limit_bytes)
        whole = content.read_nowait(-1)
        if len(whole) > limit_bytes:
            raise body_too_large(route, limit_bytes)
        check_whole(route, request.headers.get(CONTENT_ENCODING), whole, limit_bytes)
        return whole
    chunks = [c async for c in body_chunks(request, route, limit_bytes, stall_timeout_s)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
