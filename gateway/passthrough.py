"""Answers that carry a service's headers as the service sent them.

A proxied answer, or a stored one replayed to a sync client or through the
job API, should read as if the client had called the service itself.
aiohttp's response machinery gets in the way twice, and these response
classes undo it just before the head is written:

- **No header the service did not send.** aiohttp gives every answer with a
  body a ``Content-Type`` (``application/octet-stream`` when none is set).
  A service that sent none gets none added.
- **Header bytes as sent.** aiohttp writes header values as UTF-8 and drops
  what cannot be (a Latin-1 ``filename="café.pdf"`` lost its ``é``). The
  upstream client and the relay keep such bytes as lone surrogates
  (``surrogateescape``); here they are written back as the original bytes.

Both rely on aiohttp's ``StreamResponse._write_headers`` and the payload
writer's ``_headers_buf`` (the head, buffered until the first write);
``tests/integration/gateway/test_real_service.py`` fails if they change.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from multidict import CIMultiDict


def _encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _write_as_sent(response: web.StreamResponse, typed: bool) -> None:
    """Write the head without aiohttp's added ``Content-Type`` (unless the
    service sent one) and with header bytes that are not UTF-8 as they came."""
    headers = response.headers
    if not typed:
        headers.popall(hdrs.CONTENT_TYPE, None)
    if all(v.isascii() for v in headers.values()):  # the usual case: as aiohttp writes it
        await web.StreamResponse._write_headers(response)  # noqa: SLF001
        return
    names = {k.lower() for k, v in headers.items() if not _encodable(v)}
    if not names:
        await web.StreamResponse._write_headers(response)  # noqa: SLF001
        return
    raw = [(k, v) for k, v in headers.items() if k.lower() in names]
    for name in names:
        headers.popall(name)
    immediately = response._send_headers_immediately  # noqa: SLF001
    response._send_headers_immediately = False  # noqa: SLF001
    await web.StreamResponse._write_headers(response)  # noqa: SLF001
    writer = response._payload_writer  # noqa: SLF001
    assert writer is not None
    head: bytes = writer._headers_buf  # type: ignore[attr-defined]  # noqa: SLF001
    extra = b"".join(
        k.encode("latin-1") + b": " + v.encode("utf-8", "surrogateescape") + b"\r\n" for k, v in raw
    )
    writer._headers_buf = head[:-2] + extra + b"\r\n"  # type: ignore[attr-defined]  # noqa: SLF001
    if immediately:
        writer.send_headers()


def _has_type(headers: Iterable[tuple[str, str]]) -> bool:
    return any(k.lower() == "content-type" for k, _ in headers)


def relayed(
    status: int, reason: str | None, headers: CIMultiDict[str], body: bytes
) -> web.Response:
    """A whole answer of a service: aiohttp's own response when aiohttp
    would write it as sent (a ``Content-Type`` and ASCII values, the usual
    case), else a ``RelayedResponse``."""
    if _has_type(headers.items()) and all(v.isascii() for v in headers.values()):
        return web.Response(status=status, reason=reason, headers=headers, body=body)
    return RelayedResponse(status=status, reason=reason, headers=headers, body=body)


class RelayedResponse(web.Response):
    """A whole answer of a service (proxied and read whole, or stored)."""

    def __init__(
        self, *, status: int, reason: str | None, headers: CIMultiDict[str], body: bytes
    ) -> None:
        self._typed = _has_type(headers.items())
        super().__init__(status=status, reason=reason, headers=headers, body=body)

    async def _write_headers(self) -> None:
        await _write_as_sent(self, self._typed)


class RelayedStream(web.StreamResponse):
    """An answer of a service streamed on as it comes (or a HEAD's head)."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        self._typed = _has_type(headers.items())
        super().__init__(status=status, reason=reason, headers=headers)

    async def _write_headers(self) -> None:
        await _write_as_sent(self, self._typed)
