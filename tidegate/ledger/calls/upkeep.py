"""Script calls of the job API and of upkeep: cancel, overdue, promote, replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from tidegate.keys import GROUP
from tidegate.ledger.calls.base import (
    NOT_AN_ARG,
    ScriptCall,
    Settled,
    settled,
    text,
)


@dataclass(kw_only=True, slots=True)
class Cancel(ScriptCall[Settled]):
    SCRIPT: ClassVar[str] = "cancel"
    KEYS: ClassVar[tuple[str, ...]] = ("events", "job", "deadlines", "callbacks")
    job_id: str
    ttl_ms: int
    done_channel: str

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(kw_only=True, slots=True)
class Overdue(ScriptCall[Settled]):
    """Settle one job past its deadline: ``expired`` or ``requeued``."""

    SCRIPT: ClassVar[str] = "overdue"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "events", "job", "deadlines", "callbacks")
    job_id: str
    ttl_ms: int
    done_channel: str
    max_requeues: int
    deadline_s: float
    group: str = GROUP

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(kw_only=True, slots=True)
class Promoted:
    moved: int
    next_due_s: float | None
    """When the next waiting retry is due (unix s); None when none waits."""


@dataclass(kw_only=True, slots=True)
class Promote(ScriptCall[Promoted]):
    SCRIPT: ClassVar[str] = "promote"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "delayed")
    now_ms: int
    most: int

    def read(self, reply: Any) -> Promoted:
        moved, next_ms = int(reply[0]), int(reply[1])
        return Promoted(moved=moved, next_due_s=next_ms / 1000 if next_ms >= 0 else None)


class Sampled(NamedTuple):
    """One partition as the scaler reads it each tick (``sample.lua``)."""

    length: int
    exists: bool
    found: bool
    """The consumer group exists."""
    pending: int
    lag: int | None
    """None: Redis does not know it (count the entries after the group)."""
    oldest_ms: int | None
    added: int
    refused: int


@dataclass(kw_only=True, slots=True)
class Sample(ScriptCall[Sampled]):
    SCRIPT: ClassVar[str] = "sample"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "refused")
    group: str = GROUP

    def read(self, reply: Any) -> Sampled:
        length, exists, found, pending, lag, oldest, added, refused = (int(v) for v in reply)
        return Sampled(
            length,
            bool(exists),
            bool(found),
            pending,
            None if lag < 0 else lag,
            None if oldest < 0 else oldest,
            added,
            refused,
        )


@dataclass(kw_only=True, slots=True)
class Replay(ScriptCall[bool]):
    """Fold one logged event into its projection again; False when refused."""

    SCRIPT: ClassVar[str] = "replay"
    KEYS: ClassVar[tuple[str, ...]] = ("job", "deadlines")
    event_id: str
    ttl_ms: int
    fields: tuple[bytes | str, ...]
    job_id: str = field(metadata=NOT_AN_ARG)
    """Among the fields already; here it names the job key slot."""

    def read(self, reply: Any) -> bool:
        return int(reply) == 1


@dataclass(kw_only=True, slots=True)
class Workers(ScriptCall[dict[str, int]]):
    """The route's live workers and their jobs in flight; stale records go."""

    SCRIPT: ClassVar[str] = "workers"
    KEYS: ClassVar[tuple[str, ...]] = ("workers",)
    now_ms: int
    max_age_ms: int

    def read(self, reply: Any) -> dict[str, int]:
        return {text(reply[i]): int(reply[i + 1]) for i in range(0, len(reply), 2)}


@dataclass(kw_only=True, slots=True)
class PublishView(ScriptCall[int]):
    """Replace the scaler's view of a route (``tidegate.ledger.view_record``)."""

    SCRIPT: ClassVar[str] = "publish_view"
    KEYS: ClassVar[tuple[str, ...]] = ("scaler",)
    ttl_ms: int
    fields: tuple[str, ...]
    """Name and JSON value pairs."""

    def read(self, reply: Any) -> int:
        return int(reply)
