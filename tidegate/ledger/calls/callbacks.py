"""Script calls of completion callbacks: claim the due ones, end one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

from tidegate.ledger.calls.base import ScriptCall, Settled, settled, text


class DueCallback(NamedTuple):
    """One claimed callback: the job, the state it reports, this attempt."""

    job_id: str
    state: str
    attempt: int
    """1 for the first delivery attempt."""
    first_due_ms: int
    """When the job reached the state (unix ms): retries stop a while after."""

    @property
    def member(self) -> str:
        return f"{self.job_id}\n{self.state}"

    @property
    def message_id(self) -> str:
        """The Standard Webhooks ``webhook-id``: one per job and state, the
        same on every retry, so a receiver drops repeats."""
        return f"{self.job_id}.{self.state}"


class Claimed(NamedTuple):
    due: list[DueCallback]
    next_due_ms: int | None
    """When the earliest callback left in the set is due (None: none left)."""


@dataclass(kw_only=True, slots=True)
class ClaimCallbacks(ScriptCall[Claimed]):
    SCRIPT: ClassVar[str] = "claim_callbacks"
    KEYS: ClassVar[tuple[str, ...]] = ("callbacks", "callback_tries")
    now_ms: int
    lease_ms: int
    most: int

    def read(self, reply: Any) -> Claimed:
        next_ms = int(reply[0])
        due = []
        for i in range(1, len(reply), 3):
            job_id, _, state = text(reply[i]).partition("\n")
            due.append(DueCallback(job_id, state, int(reply[i + 1]), int(reply[i + 2])))
        return Claimed(due, next_ms if next_ms >= 0 else None)


@dataclass(kw_only=True, slots=True)
class EndCallback(ScriptCall[Settled]):
    SCRIPT: ClassVar[str] = "end_callback"
    KEYS: ClassVar[tuple[str, ...]] = ("events", "job", "callbacks", "callback_tries")
    job_id: str
    ttl_ms: int
    member: str
    event: Literal["callback_delivered", "callback_failed"]
    for_state: str
    attempts: int
    detail_name: Literal["status", "error"]
    detail: str

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(kw_only=True, slots=True)
class DeferCallback(ScriptCall[bool]):
    SCRIPT: ClassVar[str] = "defer_callback"
    KEYS: ClassVar[tuple[str, ...]] = ("callbacks", "callback_tries")
    member: str
    due_ms: int
    attempt: int
    first_due_ms: int

    def read(self, reply: Any) -> bool:
        return bool(int(reply))
