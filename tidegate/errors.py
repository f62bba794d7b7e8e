"""The exception tree, drawn once.

::

    TidegateError
    ├── ConfigError          the config file or an override is invalid (lists every problem)
    ├── RedisUnavailable     unreachable, nothing was done; callers answer 503 / back off
    │   ├── OutcomeUnknown   sent, but no answer came: it may have taken effect
    │   └── RedisFull        Redis refuses writes (maxmemory reached, noeviction)
    ├── RedisCommandError    Redis answered with an error no caller expects
    │   └── GroupMissing     a stream's consumer group is gone (NOGROUP): recreate it
    ├── NotReplicated        a write did not reach the replicas a route asks for, in time
    ├── Refused              a token bucket (capacity throttle or tenant quota) said no
    ├── Unencodable          a request holds a part that cannot be stored (not UTF-8)
    └── LedgerError          the event log refused a change
        ├── JobNotFound      no such job (or its retention ran out)
        ├── TransitionRefused the job's state does not allow that event (e.g. cancel once running)
        └── IdempotencyConflict same Idempotency-Key, different payload

Third-party errors (redis-py, aiohttp, pydantic) are translated into these at
the module that talks to the library (for Redis: ``tidegate.ledger``, the one
way to it), so the layers above never import them, and failures are raised,
never returned as values.
"""

from __future__ import annotations


class TidegateError(Exception):
    """Base of every error tidegate raises on purpose."""


class ConfigError(TidegateError):
    """The configuration is invalid; ``problems`` holds one line per field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class RedisUnavailable(TidegateError):
    """Redis did not answer: refused, reset, timed out or still loading."""


class OutcomeUnknown(RedisUnavailable):
    """A command reached Redis (or may have) but its answer did not come back:
    timed out or cut off after sending. Whether it took effect is not known, so
    nobody may claim that nothing happened."""


class RedisFull(RedisUnavailable):
    """Redis refused a write because it is out of memory (``maxmemory`` with
    ``noeviction``). Nothing was written; writes succeed again once memory is
    freed (results expire, streams are trimmed) or the limit is raised."""


class RedisCommandError(TidegateError):
    """Redis answered with an error no caller expects (a bug or a misconfigured
    server: a key of the wrong type, a command an ACL forbids)."""


class LedgerError(TidegateError):
    """The job ledger refused an operation."""


class JobNotFound(LedgerError):
    """No such job, or its retention ran out."""


class TransitionRefused(LedgerError):
    """The job is in a state that does not allow the event."""

    def __init__(self, job_id: str, state: str, event: str) -> None:
        self.job_id = job_id
        self.state = state
        self.event = event
        super().__init__(f"job {job_id} is {state}; {event} is not allowed")


class IdempotencyConflict(LedgerError):
    """The Idempotency-Key was used before with a different payload."""


class GroupMissing(RedisCommandError):
    """The consumer group is gone (the stream was deleted, or Redis lost it)."""


class Unencodable(TidegateError):
    """A part of a request (a header, the path, a key) cannot be encoded as UTF-8."""


class NotReplicated(TidegateError):
    """Fewer Redis replicas acknowledged a write than the route requires."""


class Refused(TidegateError):
    """Admission refused by a token bucket: the route's capacity throttle
    (``cause`` "capacity") or the tenant's quota (``cause`` "quota")."""

    def __init__(
        self, cause: str, retry_after_s: float, remaining: int, limit: int, window_s: int
    ) -> None:
        self.cause = cause
        self.retry_after_s = retry_after_s
        self.remaining = remaining
        self.limit = limit
        self.window_s = window_s
        super().__init__(f"refused by the {cause} limit; retry after {retry_after_s:.1f} s")
