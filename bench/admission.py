"""Admission throughput of one gateway process against baselines, same run.

Targets, each its own process on this machine, driven by the same wrk load
(POST of a small JSON body):

- ``bare``: aiohttp handler that reads the body and answers 202 (the ceiling);
- ``gateway``: ``tidegate gateway`` with one async route (admission into the
  route's stream with its event and projection, then 202);
- ``naive``: aiohttp handler doing one awaited XADD per request.

Rounds alternate between targets so that machine noise hits all of them. The
ratio is taken per round (a target against the bare run just before it) and
the median over rounds is reported, with the spread; the machine is shared
and single rounds swing by 30%.

Usage: python bench/admission.py [--duration-s 10] [--rounds 3] [--connections 64]
Needs wrk and redis-server on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from shell.local_redis import free_port, start_redis_server, wait_for_port

HERE = Path(__file__).resolve().parent
POST_LUA = """
wrk.method = "POST"
wrk.body = '{"sku": "widget", "quantity": 2, "note": "benchmark order"}'
wrk.headers["Content-Type"] = "application/json"
"""


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks_per_s, int(fields[12]) / ticks_per_s


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    return sum(cpu_times(pid))


def missing_tool(*tools: str) -> bool:
    """Whether a tool the bench runs is not on PATH (and, if so, say which)."""
    for tool in tools:
        if not shutil.which(tool):
            print(f"{tool} is not on PATH", file=sys.stderr)
            return True
    return False


def wrk_command(
    url: str, script: Path, duration_s: int, connections: int, threads: int = 2
) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def parse_wrk(url: str, out: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and the request count of a wrk report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if non2xx or errors:
        found = " ".join(m.group(0) for m in (non2xx, errors) if m)
        print(f"  warning: {url}: {found}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": requests}


def run_wrk(
    url: str, script: Path, duration_s: int, connections: int, pid: int
) -> dict[str, float]:
    cpu_before = cpu_s(pid)
    out = subprocess.run(
        wrk_command(url, script, duration_s, connections),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = parse_wrk(url, out)
    result["cpu_us"] = (cpu_s(pid) - cpu_before) / result["requests"] * 1e6
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if missing_tool("wrk", "redis-server"):
        return 2

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as folder:
        redis_port = free_port()
        procs.append(start_redis_server(redis_port, folder))
        wait_for_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        ports = {name: free_port() for name in ("bare", "gateway", "naive")}
        config = Path(folder) / "tidegate.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "redis": {"url": redis_url},
                    "gateway": {
                        "listen": f"127.0.0.1:{ports['gateway']}",
                        "admin_listen": f"127.0.0.1:{free_port()}",
                    },
                    "routes": [
                        {
                            "name": "bench",
                            "match": {"path_prefix": "/", "methods": ["POST"]},
                            "mode": "async",
                            "result_ttl_s": 600,
                        }
                    ],
                }
            )
        )
        script = Path(folder) / "post.lua"
        script.write_text(POST_LUA)
        py = sys.executable
        servers = {
            "bare": subprocess.Popen([py, str(HERE / "baselines.py"), "bare", str(ports["bare"])]),
            "gateway": subprocess.Popen(
                [py, "-m", "tidegate", "--log-level", "WARNING", "gateway", "-c", str(config)]
            ),
            "naive": subprocess.Popen(
                [py, str(HERE / "baselines.py"), "naive", str(ports["naive"]), redis_url]
            ),
        }
        procs.extend(servers.values())
        try:
            for port in ports.values():
                wait_for_port(port, 20.0)
            time.sleep(1.0)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
            for name, port in ports.items():  # warm-up, not counted
                url = f"http://127.0.0.1:{port}/orders"
                run_wrk(url, script, 2, args.connections, servers[name].pid)
            for round_no in range(args.rounds):
                for name, port in ports.items():
                    url = f"http://127.0.0.1:{port}/orders"
                    r = run_wrk(url, script, args.duration_s, args.connections, servers[name].pid)
                    results[name].append(r)
                    print(
                        f"round {round_no + 1} {name:8} {r['rps']:9.0f} req/s  "
                        f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                        f"server CPU {r['cpu_us']:6.1f} us/req",
                        flush=True,
                    )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)

    print()
    print(f"wrk -t2 -c{args.connections} -d{args.duration_s}s, {args.rounds} rounds")
    print("ratio: median over rounds of target req/s / bare req/s of the same round")
    print("cpu ratio: bare's server CPU per request / the target's (the same, by CPU cost)")
    print(
        "| target | req/s (median) | ratio to bare | p50 ms | p99 ms "
        "| server CPU us/req | cpu ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    bare_cpu = statistics.median(r["cpu_us"] for r in results["bare"])
    for name, rows in results.items():
        ratios = [r["rps"] / b["rps"] for r, b in zip(rows, results["bare"], strict=True)]
        rps = statistics.median(r["rps"] for r in rows)
        p50 = statistics.median(r["p50_ms"] for r in rows)
        p99 = statistics.median(r["p99_ms"] for r in rows)
        cpu = statistics.median(r["cpu_us"] for r in rows)
        print(
            f"| {name} | {rps:.0f} | {statistics.median(ratios):.2f}x "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f}) | {p50:.2f} | {p99:.2f} "
            f"| {cpu:.1f} | {bare_cpu / cpu:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
