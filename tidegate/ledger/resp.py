"""RESP on the wire, for the ledger's own connections (``link``): a command
packed by hiredis, an error reply made the redis-py exception it names, and
the kinds of reply Redis pushes to a subscribed connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser

PUSHED = frozenset({b"smessage", b"message"})
"""The kinds of reply Redis pushes to a subscribed connection unasked."""


def pack(args: Sequence[Any]) -> bytes:
    """Encode one command in RESP.

    hiredis's C packer: redis-py's own packer re-joins its buffer after every
    argument, and for a batched admit call with hundreds of arguments that
    copying dominated the gateway's time.
    """
    packed: bytes = hiredis.pack_command(tuple(args))
    return packed


def error_reply(message: str) -> Exception:
    """An error reply as the redis-py exception it is (``NoScriptError``,
    ``OutOfMemoryError``, ...), returned, not raised."""
    error: Exception = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error
