"""W3C Trace Context (``traceparent``, ``tracestate``): checked, then carried.

A request's trace context reaches a queued job's service, handler and
completion callback only through tidegate: the gateway takes it from the
client, keeps it with the job and the worker passes it on, so the trace a
platform team follows does not stop at the queue. What the client sent is
never stored or forwarded as given: ``parse`` keeps a context only when it
follows the W3C Trace Context rules, and answers None otherwise (the request
goes on without one: a bad header is never a 4xx or a 5xx).

The rules applied (https://www.w3.org/TR/trace-context/):

- ``traceparent`` is ``version-traceid-parentid-flags`` in lower-case hex
  (2, 32, 16 and 2 digits). Version ``ff`` is invalid; version ``00`` is
  exactly 55 characters; a later version may append ``-...`` after the four
  fields, which are read as version 00's and passed on as version 00. An
  all-zero trace id or parent id is invalid. More than one ``traceparent``
  header is invalid.
- ``tracestate`` is kept only beside a valid ``traceparent``. Its list
  members (every ``tracestate`` header, joined by commas) are
  ``key=value``: a key is ``[a-z][a-z0-9_-*/]{0,255}``, or a tenant
  ``[a-z0-9][a-z0-9_-*/]{0,240}`` and ``@system``
  (``[a-z][a-z0-9_-*/]{0,13}``); a value is 1 to 256 printable ASCII
  characters without ``,`` or ``=`` and not ending in a
  space. A malformed member, a repeated key or more than 32 members drop
  the whole ``tracestate`` (the traceparent stays). Over 512 characters,
  members longer than 128 characters go first, then members from the end,
  as the specification allows.

Checking costs one regular expression on a request that carries a
``traceparent`` and nothing on one that does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
HEADERS = frozenset({TRACEPARENT, TRACESTATE})
"""The lower-case names of the trace context headers."""

MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32
_LONG_MEMBER_CHARS = 128

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>(?:-.*)?)",
    re.ASCII | re.DOTALL,
)
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}",
    re.ASCII,
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", re.ASCII)


class TraceContext(NamedTuple):
    """A checked trace context: the ids in lower-case hex and the tracestate
    ('' when none was sent or it was dropped)."""

    trace_id: str
    parent_id: str
    flags: str
    state: str = ""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    def headers(self) -> list[tuple[str, str]]:
        """The headers that pass it on (no ``tracestate`` when it is empty)."""
        out = [(TRACEPARENT, self.traceparent)]
        if self.state:
            out.append((TRACESTATE, self.state))
        return out

    def with_parent(self, parent_id: str) -> TraceContext:
        """The same trace, continued by the span ``parent_id`` (16 hex digits)."""
        return self._replace(parent_id=parent_id)


def parse(traceparents: Sequence[str], tracestates: Sequence[str] = ()) -> TraceContext | None:
    """The context the headers carry, or None when there is none or it is
    invalid (a message for nobody: the request goes on without one)."""
    if len(traceparents) != 1:
        return None
    match = _TRACEPARENT.fullmatch(traceparents[0])
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.group(
        "version", "trace", "parent", "flags", "rest"
    )
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return TraceContext(trace_id, parent_id, flags, _tracestate(tracestates))


def from_headers(headers: Sequence[tuple[str, str]]) -> TraceContext | None:
    """The context among a job's stored headers (checked again: a handler may
    be given a job that another version of the gateway admitted)."""
    parents = [v for k, v in headers if k.lower() == TRACEPARENT]
    if not parents:
        return None
    return parse(parents, [v for k, v in headers if k.lower() == TRACESTATE])


def stored(trace: TraceContext | None) -> str:
    """A context as one text field (the job's projection keeps it for the
    completion callback): "traceparent", or "traceparent \n tracestate";
    '' for none."""
    if trace is None:
        return ""
    return f"{trace.traceparent}\n{trace.state}" if trace.state else trace.traceparent


def from_stored(value: str) -> TraceContext | None:
    """The context ``stored`` wrote (checked again, as anything read back)."""
    if not value:
        return None
    parent, _, state = value.partition("\n")
    return parse([parent], [state] if state else ())


def _tracestate(values: Sequence[str]) -> str:
    members = [m.strip(" \t") for value in values for m in value.split(",")]
    members = [m for m in members if m]
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return ""
    keys: set[str] = set()
    for member in members:
        key, sep, value = member.partition("=")
        if not sep or key in keys or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            return ""
        keys.add(key)
    joined = ",".join(members)
    if len(joined) <= MAX_TRACESTATE_CHARS:
        return joined
    members = [m for m in members if len(m) <= _LONG_MEMBER_CHARS]
    while members and len(",".join(members)) > MAX_TRACESTATE_CHARS:
        members.pop()
    return ",".join(members)
