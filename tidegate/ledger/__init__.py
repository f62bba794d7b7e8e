"""The one typed way to Redis: every command the parts send goes through here.

The parts (``gateway``, ``worker``, ``scaler``) and the shell never import
redis-py and never hold a connection: they open a ``store.Store`` and hold
what it hands out, a ``Ledger`` (jobs: commands, queries, upkeep) and the
small stores (throttle, liveness, history, scaler views, consumer groups,
subscriptions), and catch only tidegate's errors. An import-linter contract
keeps the modules that make or take connections out of their reach.
Every Redis failure is translated here (``client.redis_errors`` for
commands, ``scripts`` for Lua calls):
unreachable is ``RedisUnavailable``, unanswered after sending is
``OutcomeUnknown``, out of memory ``RedisFull``, any other error reply
``RedisCommandError``.

Every write that touches a job is one Lua call (``lua/``), named and typed
by a dataclass in ``calls`` (one per script) and run by a ``runner.Runner``,
plainly or coalesced with concurrent calls; admissions are coalesced per
route by ``admission.AdmissionQueue``.

Modules: ``store`` (what the parts hold); ``client``
(connecting, translating errors), ``transport`` (one class per topology),
``link`` and ``resp`` (the ledger's own connections); ``calls`` (script
calls), ``scripts``, ``script_registry``, ``exchange`` and ``cluster_calls``
(loading and sending them); ``runner``
and ``coalesce`` (batching); ``admission``, ``commands``, ``queries``,
``upkeep``, ``callback_queue`` (the ledger of jobs); ``backlog`` (measuring
a route's queue); ``throttle_record``, ``view_record``, ``liveness``,
``history`` (the records beside the jobs); ``groups`` (a worker's consumer
group), ``pubsub`` (notifications), ``health`` and ``route_status``.
"""

from __future__ import annotations

from tidegate.ledger.base import TERMINAL_STATES
from tidegate.ledger.callback_queue import Callbacks
from tidegate.ledger.commands import Commands, Outcome
from tidegate.ledger.queries import Queries
from tidegate.ledger.upkeep import ReplayReport, TrimReport, Upkeep

__all__ = ["TERMINAL_STATES", "Ledger", "Outcome", "ReplayReport", "TrimReport"]


class Ledger(Commands, Queries, Upkeep, Callbacks):
    """Reads and writes the jobs of the configured routes."""
