"""One small dataclass per Lua script call: named fields instead of counted positions.

A script reads ``KEYS[n]`` and ``ARGV[n]`` by position; each call class here
declares the same lists by name, in the same order: ``KEYS`` names the key
slots (each a ``RouteKeys`` attribute), the dataclass fields are the
arguments, and the script's header comment (``-- KEYS: ...``, ``-- ARGV:
...``) lists the same names. ``tests/unit/ledger/test_calls.py`` reads every
header and checks the two sides agree, so an argument added on one side only
fails a test instead of shifting every later one.

Each call also reads its own reply (``read``), so a caller gets a typed
value, never a raw Redis array. Calls are run by ``tidegate.ledger.runner``,
plainly or coalesced with concurrent ones.
"""

from __future__ import annotations

from typing import Any

from tidegate.ledger.calls.admission import Admit, AdmitJob, AdmitResult, Quota
from tidegate.ledger.calls.attempt import (
    Compensate,
    Finish,
    Start,
    StartRead,
    Take,
    Taken,
    Verdict,
)
from tidegate.ledger.calls.base import (
    NOT_AN_ARG,
    Arg,
    R,
    ScriptCall,
    Settled,
    arg_names,
    refusal,
    text,
    unix_ms,
)
from tidegate.ledger.calls.callbacks import (
    ClaimCallbacks,
    Claimed,
    DeferCallback,
    DueCallback,
    EndCallback,
)
from tidegate.ledger.calls.upkeep import (
    Cancel,
    Overdue,
    Promote,
    Promoted,
    PublishView,
    Replay,
    Sample,
    Sampled,
    Workers,
)

__all__ = [
    "CALLS",
    "NOT_AN_ARG",
    "Admit",
    "AdmitJob",
    "AdmitResult",
    "Arg",
    "Cancel",
    "ClaimCallbacks",
    "Claimed",
    "Compensate",
    "DeferCallback",
    "DueCallback",
    "EndCallback",
    "Finish",
    "Overdue",
    "Promote",
    "Promoted",
    "PublishView",
    "Quota",
    "R",
    "Replay",
    "Sample",
    "Sampled",
    "ScriptCall",
    "Settled",
    "Start",
    "StartRead",
    "Take",
    "Taken",
    "Verdict",
    "Workers",
    "arg_names",
    "refusal",
    "text",
    "unix_ms",
]

CALLS: tuple[type[ScriptCall[Any]], ...] = (
    Admit,
    Quota,
    Start,
    Take,
    StartRead,
    Finish,
    Compensate,
    Cancel,
    Overdue,
    Promote,
    Replay,
    Sample,
    ClaimCallbacks,
    EndCallback,
    DeferCallback,
    Workers,
    PublishView,
)
"""Every script call; ``scripts.SCRIPTS`` loads one script per entry."""
