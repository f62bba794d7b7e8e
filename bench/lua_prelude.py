"""What the scripts' shared prelude costs Redis per call, and what Redis
Functions would save of it.

Every script that appends an event carries ``fold.lua`` in front of it, and
a script's top level runs again at each EVALSHA (the prelude's local
functions are made anew each time). Redis Functions (FUNCTION LOAD, FCALL)
run a library's top level once, at load. This measures, with Redis's own
``INFO commandstats`` (usec_per_call), an EVALSHA of the prelude and
``return 1``, an EVALSHA of ``return 1`` alone, and an FCALL of a function
registered after the same prelude; each 20,000 calls, pipelined, twice.

Usage: python bench/lua_prelude.py   (needs redis-server on PATH, >= 7.0)
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shell.local_redis import free_port, start_redis_server, wait_for_port

FOLD = (Path(__file__).resolve().parents[1] / "tidegate/ledger/lua/fold.lua").read_text()
CALLS = 20_000


def per_call_us(r: redis.Redis, send: Callable[[Any], object], command: str) -> float:
    r.config_resetstat()
    pipe = r.pipeline(transaction=False)
    for i in range(CALLS):
        send(pipe)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    return float(r.info("commandstats")[f"cmdstat_{command}"]["usec_per_call"])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_redis_server(port, folder)
        try:
            wait_for_port(port)
            r = redis.Redis(port=port)
            prelude = r.script_load(FOLD + "\nreturn 1\n")
            bare = r.script_load("return 1\n")
            library = "#!lua name=tg\n" + FOLD
            library += "\nredis.register_function('noop', function(keys, args) return 1 end)\n"
            r.function_load(library, replace=True)
            print("| call | Redis us per call, run 1 | run 2 |\n|---|---:|---:|")
            cases = [
                (
                    "EVALSHA: fold.lua prelude + return 1",
                    lambda p: p.evalsha(prelude, 0),
                    "evalsha",
                ),
                ("EVALSHA: return 1", lambda p: p.evalsha(bare, 0), "evalsha"),
                ("FCALL: prelude run at load", lambda p: p.fcall("noop", 0), "fcall"),
            ]
            for label, send, command in cases:
                runs = [per_call_us(r, send, command) for _ in range(2)]
                print(f"| {label} | {runs[0]:.2f} | {runs[1]:.2f} |")
            r.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
