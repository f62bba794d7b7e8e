"""What every script call shares: the base class, argument naming, reply helpers.

A call class (``calls``) declares its script (``SCRIPT``), its key slots by
name (``KEYS``, each a ``RouteKeys`` attribute) and its arguments as
dataclass fields, in the script's order; ``keys`` and ``argv`` produce what
EVALSHA sends, ``read`` types the answer.
"""

from __future__ import annotations

import operator
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

from tidegate.errors import Refused
from tidegate.keys import RouteKeys

Arg = str | bytes | int | float
R = TypeVar("R")

NOT_AN_ARG = {"arg": False}
"""Field metadata: the field names a key slot, it is not sent as an argument."""


_ARG_NAMES: dict[type[object], tuple[str, ...]] = {}
_GETTERS: dict[type[object], Callable[[object], tuple[Any, ...]]] = {}
_KEY_SLOTS: dict[type[object], tuple[tuple[str, bool], ...]] = {}


def _arg_names(call: type[object]) -> tuple[str, ...]:
    names = _ARG_NAMES.get(call)
    if names is None:
        names = _ARG_NAMES[call] = tuple(
            f.name
            for f in fields(call)  # type: ignore[arg-type]
            if f.name != "route" and f.metadata.get("arg", True)
        )
    return names


def _getter(call: type[object]) -> Callable[[object], tuple[Any, ...]]:
    """One attrgetter per class for its arguments, always answering a tuple
    (``attrgetter`` of a single name answers the value itself)."""
    getter = _GETTERS.get(call)
    if getter is None:
        names = _arg_names(call)
        if len(names) == 1:
            (name,) = names
            getter = _GETTERS[call] = lambda obj: (getattr(obj, name),)
        else:
            getter = _GETTERS[call] = operator.attrgetter(*names)
    return getter


def arg_names(call: type[object]) -> list[str]:
    """The ARGV names of a call class (or of ``AdmitJob``), in order (read once
    per class: admission builds one call per batch on the hot path)."""
    return list(_arg_names(call))


def argv_of(call: object) -> list[Arg]:
    out: list[Arg] = []
    for value in _getter(type(call))(call):
        if value is True or value is False:
            out.append(int(value))
        elif isinstance(value, tuple):  # a variadic tail (``name...`` in the header)
            out.extend(value)
        else:
            out.append(value)
    return out


def _key_slots(call: type[ScriptCall[Any]]) -> tuple[tuple[str, bool], ...]:
    """Each key slot's ``RouteKeys`` attribute, and whether it takes the job id."""
    slots = _KEY_SLOTS.get(call)
    if slots is None:
        slots = _KEY_SLOTS[call] = tuple(
            (name, not isinstance(getattr(RouteKeys, name), property)) for name in call.KEYS
        )
    return slots


def unix_ms(now_s: float | None = None) -> int:
    """Unix time in ms (``now_s`` given: that instead of the clock), as the
    scripts take times."""
    return int((time.time() if now_s is None else now_s) * 1000)


def text(value: bytes | str) -> str:
    """A reply value as str (clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def refusal(cause: str, info: bytes | str) -> Refused:
    """A bucket script's "retry_ms,remaining,limit,window_s" as a refusal."""
    retry_ms, remaining, limit, window_s = (int(x) for x in text(info).split(","))
    return Refused(cause, retry_ms / 1000, remaining, limit, window_s)


@dataclass(kw_only=True, slots=True)
class ScriptCall(ABC, Generic[R]):
    """A call of the script ``SCRIPT``; its fields after ``route`` are ARGV in order."""

    SCRIPT: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]
    route: RouteKeys
    job_id: str = field(default="", metadata=NOT_AN_ARG)
    """The job whose keys (``job``, ``result``) the call names; redeclared, in
    its place among the arguments, by calls that also send it."""

    def keys(self) -> list[str]:
        """The key slots by name: a ``RouteKeys`` property, or a method of the job id."""
        route, job_id = self.route, self.job_id
        return [
            getattr(route, name)(job_id) if of_job else getattr(route, name)
            for name, of_job in _key_slots(type(self))
        ]

    def argv(self) -> list[Arg]:
        return argv_of(self)

    @abstractmethod
    def read(self, reply: Any) -> R:
        """The script's answer as a typed value."""


@dataclass(kw_only=True, slots=True)
class Settled:
    """An ``{ok, state}`` answer: whether the change was made, the state after (or before)."""

    ok: bool
    state: str


def settled(reply: Any) -> Settled:
    return Settled(ok=int(reply[0]) == 1, state=text(reply[1]))
