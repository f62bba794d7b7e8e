"""Request bodies as sent, with their ``Content-Encoding`` checked, not undone.

aiohttp's server decompresses gzip and deflate bodies by default; forwarding
those bytes with the client's ``Content-Encoding`` gave the service plain
bytes labelled gzip. The gateway's public server therefore leaves bodies as
they arrive (``auto_decompress=False``): proxy routes stream them byte for
byte and queued routes store exactly the bytes, with the header, that the
service will receive.

What the gateway still owes the service is that the label is true. Each
chunk is fed through a decoder as it passes (nothing decoded is kept), so:

- a body that is not what its ``Content-Encoding`` says (not gzip, not zlib
  or raw deflate, cut short, trailing bytes after the end) is a 400 problem
  before the service sees it, or, where part of it already streamed on to a
  proxy route's upstream, that request is abandoned and the client gets the
  400;
- the route's ``max_body_bytes`` holds on what the body decodes to as well
  as on the bytes sent: a small body that inflates past it (a zip bomb) is a
  413, and decoding never holds more than ``STEP_BYTES`` of output at once.

Encodings the gateway cannot decode (``br``, ``zstd``, anything else) pass
through unchecked: the service is the judge of those. ``identity`` is no
encoding. Several encodings (``gzip, gzip``) are undone in reverse order.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from gateway.rejections import bad_encoding, body_too_large

STEP_BYTES = 64 * 1024
"""Most decoded output produced (and dropped) per decoder call."""

CHECKED = frozenset({"gzip", "x-gzip", "deflate"})


def encodings(header: str | None) -> list[str]:
    """The codings of a ``Content-Encoding`` value, in the order applied."""
    if not header:
        return []
    codings = (c.strip().lower() for c in header.split(","))
    return [c for c in codings if c not in ("", "identity")]


class _Stage:
    """One coding undone over a stream of chunks."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib: zlib._Decompress | None = None
        if coding != "deflate":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._head = b""

    def _open(self, data: bytes) -> bytes:
        """deflate: zlib-wrapped as RFC 9110 says, or raw as some clients send it."""
        self._head += data
        if len(self._head) < 2:
            return b""
        b0, b1 = self._head[0], self._head[1]
        wrapped = b0 & 0x0F == 8 and ((b0 << 8) | b1) % 31 == 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return data

    def feed(self, data: bytes) -> list[bytes]:
        if self._zlib is None:
            data = self._open(data)
            if self._zlib is None:
                return []
        out: list[bytes] = []
        while data:
            if self._zlib.eof:
                raise zlib.error("bytes after the end of the compressed data")
            out.append(self._zlib.decompress(data, STEP_BYTES))
            data = self._zlib.unconsumed_tail
        if self._zlib.unused_data:
            raise zlib.error("bytes after the end of the compressed data")
        return out

    def finish(self) -> None:
        if self._zlib is None or not self._zlib.eof:
            raise zlib.error("the compressed data ends early")


class BodyCheck:
    """Checks a body's encoding chunk by chunk; raises Rejection (400, 413)."""

    def __init__(self, route: str, codings: Sequence[str], limit_bytes: int) -> None:
        self.route = route
        self.limit_bytes = limit_bytes
        self.stages = [_Stage(c) for c in reversed(codings)]
        self.decoded_bytes = 0

    @classmethod
    def of(cls, route: str, header: str | None, limit_bytes: int) -> BodyCheck | None:
        """A check for this ``Content-Encoding``, or None when there is
        nothing the gateway can check (no coding, or one it cannot decode)."""
        codings = encodings(header)
        if not codings or any(c not in CHECKED for c in codings):
            return None
        return cls(route, codings, limit_bytes)

    def feed(self, chunk: bytes) -> None:
        try:
            pieces = [chunk]
            for stage in self.stages:
                pieces = [out for piece in pieces for out in stage.feed(piece)]
        except zlib.error as e:
            raise self._refused(e) from None
        self.decoded_bytes += sum(len(p) for p in pieces)
        if self.decoded_bytes > self.limit_bytes:
            raise body_too_large(self.route, self.limit_bytes, decoded=True)

    def finish(self) -> None:
        try:
            for stage in self.stages:
                stage.finish()
        except zlib.error as e:
            raise self._refused(e) from None

    def _refused(self, error: zlib.error) -> Exception:
        codings = ", ".join(reversed([s.coding for s in self.stages]))
        return bad_encoding(self.route, codings, str(error))


def check_whole(route: str, header: str | None, body: bytes, limit_bytes: int) -> None:
    """Check a body read whole (queued routes, small proxied bodies)."""
    check = BodyCheck.of(route, header, limit_bytes)
    if check is not None:
        check.feed(body)
        check.finish()
