"""Where a sync request's CPU goes: each process's CPU per request, and Redis's.

The sync tier of ``bench/sync_path.py`` alone, laid out the same way (the
gateway on core 0; the service, the relay worker, Redis and wrk on core 1),
with one gateway and nothing else running. Each round runs wrk against the
sync route and reads, from ``/proc``, the user and system CPU each process
spent, divided by the requests wrk completed; with ``--commandstats``, also
Redis's own time per command (``INFO commandstats``, reset before the round).
With ``--direct``, each round also runs wrk against the service itself: what
the same unchanged service spends per request called directly, against
relayed by the worker. ``--redis-core 0`` runs Redis on the gateway's core.

``--root DIR`` runs the parts from another checkout of tidegate (its
``PYTHONPATH`` and working directory), so two versions can be compared in
interleaved runs, each run its own processes:

    git worktree add /tmp/old <commit>
    python bench/sync_cpu.py --root /tmp/old; python bench/sync_cpu.py

Usage: python bench/sync_cpu.py [--connections 8] [--duration-s 5] [--rounds 2]
       [--root DIR] [--commandstats] [--direct] [--redis-core 0|1]
Needs wrk, redis-server and taskset on PATH.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import redis  # noqa: E402
from admission import POST_LUA, cpu_times, missing_tool, parse_wrk, wrk_command  # noqa: E402
from servers import LOAD_CORE, SERVER_CORE, config, layout, pin, pinned, stop  # noqa: E402

from shell.local_redis import free_port, start_redis_server, wait_for_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration-s", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    parser.add_argument("--commandstats", action="store_true")
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--redis-core", choices=(SERVER_CORE, LOAD_CORE), default=LOAD_CORE)
    args = parser.parse_args()
    if missing_tool("wrk", "redis-server", "taskset"):
        return 2
    py, root = sys.executable, args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    part = [py, "-m", "tidegate", "--log-level", "WARNING"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
        folder = Path(name)
        redis_port, upstream_port, gateway_port = free_port(), free_port(), free_port()
        procs["redis"] = start_redis_server(redis_port, name)
        pin(procs["redis"].pid, args.redis_core)
        wait_for_port(redis_port)
        upstream = f"http://127.0.0.1:{upstream_port}"
        path = config(folder, f"redis://127.0.0.1:{redis_port}/0", upstream, gateway_port, False)
        procs["service"] = pinned(
            LOAD_CORE, [py, str(HERE / "baselines.py"), "upstream", str(upstream_port)]
        )
        quiet = {"env": env, "cwd": root, "stdout": subprocess.DEVNULL}
        procs["gateway"] = pinned(SERVER_CORE, [*part, "gateway", "-c", str(path)], **quiet)
        procs["worker"] = pinned(
            LOAD_CORE,
            [*part, "worker", "-c", str(path), "--route", "sync", "--upstream", upstream],
            **quiet,
        )
        script = folder / "post.lua"
        script.write_text(POST_LUA)
        url = f"http://127.0.0.1:{gateway_port}/sync"
        load = ["taskset", "-c", LOAD_CORE]
        stats = redis.Redis(port=redis_port)
        try:
            wait_for_port(upstream_port, 20.0)
            wait_for_port(gateway_port, 20.0)
            time.sleep(1.0)
            subprocess.run(
                [*load, *wrk_command(url, script, 2, args.connections, 1)], capture_output=True
            )
            print(
                f"root {root}, {args.connections} connections, {args.duration_s} s per round; "
                + layout(args.redis_core)
            )
            tiers = {"sync": url, **({"direct": f"{upstream}/x"} if args.direct else {})}
            for round_no in range(args.rounds):
                for tier, target in tiers.items():
                    stats.config_resetstat()
                    before = {n: cpu_times(p.pid) for n, p in procs.items()}
                    out = subprocess.run(
                        [*load, *wrk_command(target, script, args.duration_s, args.connections, 1)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    after = {n: cpu_times(p.pid) for n, p in procs.items()}
                    result = parse_wrk(target, out)
                    per = 1e6 / result["requests"]
                    spent = "  ".join(
                        f"{n} {(after[n][0] - before[n][0]) * per:.0f}+"
                        f"{(after[n][1] - before[n][1]) * per:.0f}"
                        for n in procs
                    )
                    print(
                        f"round {round_no + 1} {tier}: {result['rps']:.0f} req/s, p50 "
                        f"{result['p50_ms']:.2f} ms; CPU us/request (user+sys): {spent}"
                    )
                    if args.commandstats and tier == "sync":
                        commandstats(stats, per)
        finally:
            stats.close()
            stop(list(procs.values()))
    return 0


def commandstats(stats: redis.Redis, per: float) -> None:
    """Redis's time per command (at least 0.1 us) per request, largest first."""
    commands: dict[str, dict[str, float]] = stats.info("commandstats")
    for command, row in sorted(commands.items(), key=lambda kv: -kv[1]["usec"]):
        if row["usec"] * per / 1e6 >= 0.1:
            print(
                f"  {command.removeprefix('cmdstat_'):12} "
                f"{row['calls'] * per / 1e6:5.2f} calls/request  "
                f"{row['usec'] * per / 1e6:6.1f} us/request"
            )


if __name__ == "__main__":
    sys.exit(main())
