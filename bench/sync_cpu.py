"""CPU per request, every process counted, over a bare aiohttp handler's.

The measure the sync path is judged by: what a request costs in CPU time
(user + system, read from ``/proc`` before and after each wrk window, divided
by the requests answered) in every process it goes through, over what a bare
aiohttp handler (``bench/baselines.py bare``: read the body, answer 202, no
Redis) costs per request at the same connection count in the same round.
Unlike requests per second, that ratio travels between machines.

Tiers, each at every ``--connections`` count (default 1, 8 and 64):

- ``bare``: the handler alone (its own process on the server's core);
- ``sync``: a sync route, one relay worker in front of a trivial service:
  gateway, worker, Redis and the service counted;
- ``proxy``: a proxy route to the same service: gateway and service;
- ``async``: 202 admission of an async route: gateway and Redis;
- ``direct`` (with ``--direct``): the service called directly;
- ``floor`` and ``floor-async`` (``bench/floor.py``): the least a sync
  request and an admission through a Redis Stream cost in Python (one XADD,
  a read, the service call, an acknowledgement and a publish; no event
  log): gateway, worker, Redis and service, and gateway and Redis;
- with ``--tracing``, ``sync+otel``, ``proxy+otel`` and ``async+otel``: the
  same through a second gateway and worker with spans on (OTLP/HTTP to
  ``bench/otlp_sink.py``, every trace sampled: each request starts one), on
  Redis database 1. The sink's own CPU is the collector's and not counted;
  the exporters' threads are their processes' and are. The spans the sink
  received are checked against the requests answered (5 per sync request, 2
  per proxied one, 2 per admission): "spans 100.1% of expected" (a little
  over: requests still in flight when wrk stops counting) says none was
  dropped.

The layout is ``bench/sync_path.py``'s: the gateway and the bare handler on
core 0, the service, the worker, Redis and wrk on core 1 (``--redis-core 0``
puts Redis on core 0). With ``--commandstats``, Redis's own time per command
for the sync tier (``INFO commandstats``, reset before the window).

``--root DIR`` runs the parts from another checkout of tidegate (its
``PYTHONPATH`` and working directory), so two versions can be compared in
interleaved runs, each run its own processes:

    git worktree add /tmp/old <commit>
    python bench/sync_cpu.py --root /tmp/old; python bench/sync_cpu.py

Usage: python bench/sync_cpu.py [--connections 1 8 64]
       [--tiers sync proxy async floor floor-async]
       [--duration-s 5] [--rounds 2] [--root DIR] [--commandstats] [--direct]
       [--redis-core 0|1] [--tracing]
Needs wrk, redis-server and taskset on PATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from traced import SPANS_PER_REQUEST, start_traced  # noqa: E402

from shell.local_redis import free_port, start_redis_server, wait_for_port  # noqa: E402

COUNTED = {
    "bare": ("bare",),
    "direct": ("service",),
    "sync": ("gateway", "worker", "redis", "service"),
    "proxy": ("gateway", "service"),
    "async": ("gateway", "redis"),
    "floor": ("floor-gateway", "floor-worker", "redis", "service"),
    "floor-async": ("floor-gateway", "redis"),
    "sync+otel": ("gateway+otel", "worker+otel", "redis", "service"),
    "proxy+otel": ("gateway+otel", "service"),
    "async+otel": ("gateway+otel", "redis"),
}
"""The processes each tier's requests go through: their CPU is the tier's
(the first is the gateway, reported on its own too)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--tiers", nargs="+", default=["sync", "proxy", "async"])
    parser.add_argument("--duration-s", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    parser.add_argument("--commandstats", action="store_true")
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--redis-core", choices=(SERVER_CORE, LOAD_CORE), default=LOAD_CORE)
    parser.add_argument("--tracing", action="store_true")
    args = parser.parse_args()
    if missing_tool("wrk", "redis-server", "taskset"):
        return 2
    unknown = set(args.tiers) - set(COUNTED)
    if unknown:
        print(f"unknown tiers {sorted(unknown)}; known: {sorted(COUNTED)}", file=sys.stderr)
        return 2
    py, root = sys.executable, args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    part = [py, "-m", "tidegate", "--log-level", "WARNING"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
        folder = Path(name)
        redis_port, upstream_port, gateway_port, bare_port = (free_port() for _ in range(4))
        procs["redis"] = start_redis_server(redis_port, name)
        pin(procs["redis"].pid, args.redis_core)
        wait_for_port(redis_port)
        upstream = f"http://127.0.0.1:{upstream_port}"
        path = config(folder, f"redis://127.0.0.1:{redis_port}/0", upstream, gateway_port, False)
        baselines = [py, str(HERE / "baselines.py")]
        procs["service"] = pinned(LOAD_CORE, [*baselines, "upstream", str(upstream_port)])
        procs["bare"] = pinned(SERVER_CORE, [*baselines, "bare", str(bare_port)])
        quiet = {"env": env, "cwd": root, "stdout": subprocess.DEVNULL}
        procs["gateway"] = pinned(SERVER_CORE, [*part, "gateway", "-c", str(path)], **quiet)
        procs["worker"] = pinned(
            LOAD_CORE,
            [*part, "worker", "-c", str(path), "--route", "sync", "--upstream", upstream],
            **quiet,
        )
        floors = {"floor", "floor-async"} & set(args.tiers)
        if floors:
            floor_port = free_port()
            floor = [py, str(HERE / "floor.py")]
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            procs["floor-gateway"] = pinned(
                SERVER_CORE, [*floor, "gateway", str(floor_port), redis_url]
            )
            procs["floor-worker"] = pinned(LOAD_CORE, [*floor, "worker", redis_url, upstream])
        traced = start_traced(procs, folder, redis_port, upstream, part, quiet, args.tracing)
        script = folder / "post.lua"
        script.write_text(POST_LUA)
        gateway = f"http://127.0.0.1:{gateway_port}"
        targets = {
            "bare": f"http://127.0.0.1:{bare_port}/x",
            "sync": f"{gateway}/sync",
            "proxy": f"{gateway}/proxy",
            "async": f"{gateway}/async",
            "direct": f"{upstream}/x",
        }
        if floors:
            targets["floor"] = f"http://127.0.0.1:{floor_port}/x"
            targets["floor-async"] = f"http://127.0.0.1:{floor_port}/async"
        tiers = ["bare", *args.tiers, *(["direct"] if args.direct else [])]
        if traced is not None:
            otel = [tier for tier in args.tiers if not tier.startswith("floor")]
            for tier in otel:
                targets[f"{tier}+otel"] = f"{traced.gateway}/{tier}"
            tiers += [f"{tier}+otel" for tier in otel]
        load = ["taskset", "-c", LOAD_CORE]
        stats = redis.Redis(port=redis_port)
        rows: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            for port in (upstream_port, gateway_port, bare_port):
                wait_for_port(port, 20.0)
            time.sleep(1.0)
            for tier in tiers:  # warm up every path once
                warm = wrk_command(targets[tier], script, 2, 8, 1)
                subprocess.run([*load, *warm], capture_output=True)
            print(
                f"root {root}, {args.duration_s} s per window; "
                + layout(args.redis_core)
                + "; bare: its own process on core "
                + SERVER_CORE
            )
            for round_no in range(args.rounds):
                for connections in args.connections:
                    for tier in tiers:
                        received = traced.settled() if traced and tier.endswith("+otel") else 0
                        row = window(procs, tier, targets[tier], script, connections, args, load)
                        if traced is not None and tier in SPANS_PER_REQUEST:
                            want = row["requests"] * SPANS_PER_REQUEST[tier]
                            row["spans_seen"] = (traced.settled() - received) / want
                        rows.setdefault((tier, connections), []).append(row)
                        shown = "  ".join(f"{n} {row[n]:.0f}" for n in COUNTED[tier])
                        print(
                            f"round {round_no + 1} c{connections:<3} {tier:6} "
                            f"{row['rps']:7.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                            f"CPU us/request: {shown}  all {row['all']:.0f}"
                            + (
                                f"  spans {row['spans_seen']:.1%} of expected"
                                if "spans_seen" in row
                                else ""
                            )
                        )
                        if args.commandstats and tier == "sync":
                            commandstats(stats, row["requests"])
                        stats.config_resetstat()
        finally:
            stats.close()
            stop(list(procs.values()))
    report(rows, args.connections, tiers)
    over_floor(rows, args.connections, tiers)
    return 0


def window(
    procs: dict[str, subprocess.Popen[bytes]],
    tier: str,
    target: str,
    script: Path,
    connections: int,
    args: argparse.Namespace,
    load: list[str],
) -> dict[str, float]:
    """One wrk window: req/s, p50 and each counted process's CPU per request (us)."""
    before = {n: cpu_times(procs[n].pid) for n in COUNTED[tier]}
    out = subprocess.run(
        [*load, *wrk_command(target, script, args.duration_s, connections, 1)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = {n: cpu_times(procs[n].pid) for n in COUNTED[tier]}
    result = parse_wrk(target, out)
    per = 1e6 / result["requests"]
    row = {"rps": result["rps"], "p50_ms": result["p50_ms"], "requests": result["requests"]}
    for n in COUNTED[tier]:
        row[n] = (after[n][0] - before[n][0] + after[n][1] - before[n][1]) * per
    row["all"] = sum(row[n] for n in COUNTED[tier])
    return row


def report(
    rows: dict[tuple[str, int], list[dict[str, float]]], connections: list[int], tiers: list[str]
) -> None:
    """One table: medians over rounds; *over bare* per round (the tier's CPU
    per request over bare's at the same connections), median over rounds."""
    print(
        "\n| tier | connections | req/s | p50 ms | CPU us/request, by process | all | "
        "all over bare | gateway over bare |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for c in connections:
        bare = rows[("bare", c)]
        for tier in tiers:
            runs = rows[(tier, c)]
            over = [r["all"] / b["all"] for r, b in zip(runs, bare, strict=True)]
            gateway = "-"
            first = COUNTED[tier][0]
            if "gateway" in first:
                pairs = zip(runs, bare, strict=True)
                gateway = f"{statistics.median(r[first] / b['all'] for r, b in pairs):.2f}x"
            by = ", ".join(
                f"{n} {statistics.median(r[n] for r in runs):.0f}" for n in COUNTED[tier]
            )
            print(
                f"| {tier} | {c} | {statistics.median(r['rps'] for r in runs):,.0f} | "
                f"{statistics.median(r['p50_ms'] for r in runs):.2f} | {by} | "
                f"{statistics.median(r['all'] for r in runs):.0f} | "
                f"{statistics.median(over):.2f}x ({min(over):.2f}-{max(over):.2f}) | {gateway} |"
            )


FLOORS = {"sync": ("floor", "all"), "async": ("floor-async", "gateway")}
"""A tier, the floor it is held against, and what is compared: every
process's CPU, or the gateway's alone (against the floor's gateway)."""


def over_floor(
    rows: dict[tuple[str, int], list[dict[str, float]]], connections: list[int], tiers: list[str]
) -> None:
    """Each tier over its floor, per round (min-max), median over rounds."""
    for tier, (floor, what) in FLOORS.items():
        if tier not in tiers or floor not in tiers:
            continue
        for c in connections:
            pairs = zip(rows[(tier, c)], rows[(floor, c)], strict=True)
            mine, theirs = what, "all" if what == "all" else "floor-gateway"
            over = [r[mine] / f[theirs] for r, f in pairs]
            print(
                f"{tier} over {floor} at {c} connections ({what}): "
                f"{statistics.median(over):.2f}x ({min(over):.2f}-{max(over):.2f})"
            )


def commandstats(stats: redis.Redis, requests: float) -> None:
    """Redis's time per command (at least 0.1 us) per request, largest first."""
    per = 1e6 / requests
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
