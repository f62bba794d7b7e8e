"""The job's state machine as the Lua prelude (``fold.lua``) has it: every
event against every state, on redis-server, against the table below.

The prelude is run as a script of its own with one line added that asks
``allowed`` and ``terminal``, so the very code every ledger script starts
with is what is checked, pair by pair."""

from __future__ import annotations

from tidegate.ledger import TERMINAL_STATES
from tidegate.ledger.client import Connection
from tidegate.ledger.scripts import SCRIPTS

STATES = (
    "",
    "queued",
    "running",
    "failed",
    "succeeded",
    "cancelled",
    "dead_lettered",
    "expired",
    "compensated",
)
ALLOWED_FROM = {
    "accepted": {""},
    "started": {"queued", "running"},
    "succeeded": {"running"},
    "failed": {"running"},
    "dead_lettered": {"queued", "running", "failed"},
    "cancelled": {"queued"},
    "compensated": {"dead_lettered"},
    "expired": {"queued", "running", "failed"},
    "requeued": {"queued", "running"},
    "callback_delivered": set(TERMINAL_STATES),
    "callback_failed": set(TERMINAL_STATES),
    "unheard_of": set(),
}
ASK_ALLOWED = """
local out = {}
for i = 1, #ARGV, 2 do out[#out + 1] = allowed(ARGV[i], ARGV[i + 1]) and 1 or 0 end
return out
"""
ASK_TERMINAL = """
local out = {}
for i = 1, #ARGV do out[#out + 1] = terminal(ARGV[i]) and 1 or 0 end
return out
"""


def prelude() -> str:
    """The prelude every script starts with, as the start script holds it."""
    source = SCRIPTS["start"].source
    return source[: source.index("-- start.lua")]


async def ask(redis: Connection, question: str, argv: list[str]) -> list[bool]:
    """The prelude plus ``question``, run with ``argv`` (no keys)."""
    answer = await redis.eval(prelude() + question, 0, *argv)
    return [bool(int(x)) for x in answer]


async def test_every_event_is_applied_in_exactly_its_states(redis: Connection) -> None:
    pairs = [(state, event) for event in ALLOWED_FROM for state in STATES]
    answers = await ask(redis, ASK_ALLOWED, [x for pair in pairs for x in pair])
    wrong = [
        f"{event} in {state or 'no state'}: {'allowed' if got else 'refused'}"
        for (state, event), got in zip(pairs, answers, strict=True)
        if got != (state in ALLOWED_FROM[event])
    ]
    assert wrong == []


async def test_the_terminal_states_are_the_ledger_s(redis: Connection) -> None:
    answers = await ask(redis, ASK_TERMINAL, list(STATES))
    terminal = {state for state, got in zip(STATES, answers, strict=True) if got}
    assert terminal == TERMINAL_STATES
