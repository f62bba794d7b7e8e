"""The Lua scripts, as shipped: loaded once, named by SHA, packed as EVALSHA.

Every script is its own file under ``lua/`` with ``fold.lua``,
``bucket.lua`` and ``attempt.lua`` prepended (the one definition of the
projection fold, the token bucket and the start of an attempt). A call is
sent as ``EVALSHA sha nkeys keys... args...``, packed here once per call
(``packed``), with ``WAIT`` behind when a route asks for replicas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tidegate.ledger.calls import CALLS, ScriptCall
from tidegate.ledger.resp import pack


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def _load() -> dict[str, Script]:
    folder = resources.files("tidegate.ledger") / "lua"
    preludes = ("fold", "bucket", "attempt")
    prelude = "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in preludes)
    out = {}
    for name in (call.SCRIPT for call in CALLS):
        source = prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")
        out[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())
    return out


SCRIPTS = _load()


def packed_call(script_call: ScriptCall[Any]) -> bytes:
    """One call as the EVALSHA command it is sent as (to go behind another
    command on a connection of its own: ``groups.ConsumerGroup.read_then``)."""
    return _packed([script_call], None)


def _packed(calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None) -> bytes:
    """The calls as EVALSHA commands (and WAIT), in one buffer."""
    commands = []
    for c in calls:
        keys = c.keys()
        commands.append(pack(["EVALSHA", SCRIPTS[c.SCRIPT].sha, len(keys), *keys, *c.argv()]))
    if wait:
        commands.append(pack(["WAIT", *wait]))
    return b"".join(commands)
