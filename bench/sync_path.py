"""The sync path and the proxy against the service called directly, same run.

Tiers, each its own process(es), driven by the same ``wrk`` load (POST of a
small JSON body) at each ``--connections`` count:

- ``direct``: the trivial service itself (``bench/baselines.py upstream``);
- ``nginx``: nginx (one worker, keep-alive to the service) in front of it,
  when nginx is installed;
- ``aioproxy``: a minimal aiohttp reverse proxy (``baselines.py proxy``);
- ``proxy``: a ``tidegate gateway`` proxy route to the service;
- ``proxy+tenant`` and ``proxy+quota``: the same route on a second gateway
  that has tenants (API keys), as a tenant without a quota and as one whose
  quota never binds;
- ``sync``: a sync route of the same gateway, one relay worker in front of
  the service;
- ``async`` and ``async+key`` (only with ``--admission``): 202 admission of
  an async route, without and with a unique ``Idempotency-Key`` per request.

Servers (the gateway, nginx, the aiohttp proxy) are pinned to core 0; the
service, the worker, Redis and wrk to core 1 (``taskset``), so the server
under test has a core of its own. ``--redis-core 0`` puts Redis on the
server's core instead (the targets are stated for the default: this only
shows how much the layout decides). Rounds interleave the tiers; each tier's
throughput is a ratio to ``direct`` (or, for ``async+key``, to ``async``;
for ``proxy+quota``, to ``proxy+tenant``) in the same round, median over rounds;
*added* latency is the tier's p50/p99 minus direct's of the same round.

Usage: python bench/sync_path.py [--duration-s 5] [--rounds 3]
       [--connections 8 64] [--admission] [--tiers sync proxy ...] [--redis-core 0|1]
Needs wrk and redis-server on PATH; nginx optional.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from admission import POST_LUA, missing_tool, parse_wrk, wrk_command  # noqa: E402
from servers import (  # noqa: E402
    LOAD_CORE,
    SERVER_CORE,
    TENANTS,
    api_key,
    config,
    layout,
    pin,
    pinned,
    stop,
)

from shell.local_redis import free_port, start_redis_server, wait_for_port  # noqa: E402

KEYED_LUA = (
    POST_LUA
    + """
local counter = 0
local prefix = "{prefix}"
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter
  return wrk.format()
end
"""
)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream service {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--admission", action="store_true")
    parser.add_argument(
        "--tiers", nargs="+", help="only these tiers (and their bases); default: all"
    )
    parser.add_argument("--redis-core", choices=(SERVER_CORE, LOAD_CORE), default=LOAD_CORE)
    args = parser.parse_args()
    if missing_tool("wrk", "redis-server", "taskset"):
        return 2
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
        folder = Path(name)
        redis_port = free_port()
        procs.append(start_redis_server(redis_port, name))
        pin(procs[0].pid, args.redis_core)
        wait_for_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        ports = {
            "upstream": free_port(),
            "gateway": free_port(),
            "tenants": free_port(),
            "aioproxy": free_port(),
        }
        upstream = f"http://127.0.0.1:{ports['upstream']}"
        path = config(folder, redis_url, upstream, ports["gateway"], tenants=False)
        with_tenants = config(folder, redis_url, upstream, ports["tenants"], tenants=True)
        quiet = {"stdout": subprocess.DEVNULL}
        procs.append(
            pinned(LOAD_CORE, [py, str(HERE / "baselines.py"), "upstream", str(ports["upstream"])])
        )
        procs.append(
            pinned(
                SERVER_CORE,
                [py, str(HERE / "baselines.py"), "proxy", str(ports["aioproxy"]), upstream],
            )
        )
        gateway_cmd = [py, "-m", "tidegate", "--log-level", "WARNING", "gateway", "-c"]
        gateway = pinned(SERVER_CORE, [*gateway_cmd, str(path)])
        tenant_gateway = pinned(SERVER_CORE, [*gateway_cmd, str(with_tenants)])
        procs.extend((gateway, tenant_gateway))
        worker_cmd = [py, "-m", "tidegate", "--log-level", "WARNING", "worker", "-c", str(path)]
        procs.append(
            pinned(LOAD_CORE, [*worker_cmd, "--route", "sync", "--upstream", upstream], **quiet)
        )
        targets = {
            "direct": (f"{upstream}/x", "post", gateway.pid),
            "aioproxy": (f"http://127.0.0.1:{ports['aioproxy']}/x", "post", procs[2].pid),
            "proxy": (f"http://127.0.0.1:{ports['gateway']}/proxy", "post", gateway.pid),
            "proxy+tenant": (f"http://127.0.0.1:{ports['tenants']}/proxy", "free", gateway.pid),
            "proxy+quota": (f"http://127.0.0.1:{ports['tenants']}/proxy", "metered", gateway.pid),
            "sync": (f"http://127.0.0.1:{ports['gateway']}/sync", "post", gateway.pid),
        }
        if shutil.which("nginx"):
            ports["nginx"] = free_port()
            for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (folder / sub).mkdir()
            conf = folder / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(folder=folder, upstream=ports["upstream"], port=ports["nginx"])
            )
            nginx = pinned(SERVER_CORE, ["nginx", "-c", str(conf), "-p", str(folder)])
            procs.append(nginx)
            targets["nginx"] = (f"http://127.0.0.1:{ports['nginx']}/x", "post", nginx.pid)
        if args.admission:
            gw = f"http://127.0.0.1:{ports['gateway']}/async"
            targets["async"] = (gw, "post", gateway.pid)
            targets["async+key"] = (gw, "keyed", gateway.pid)
        if args.tiers:
            keep = {"direct", *args.tiers, *(BASE[t] for t in args.tiers if t in BASE)}
            targets = {tier: target for tier, target in targets.items() if tier in keep}
        scripts = {"post": POST_LUA, "keyed": KEYED_LUA}
        for tenant in TENANTS:
            scripts[tenant] = POST_LUA + f'wrk.headers["X-Api-Key"] = "{api_key(tenant)}"\n'
        for kind, text in scripts.items():
            (folder / f"{kind}.lua").write_text(text)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            for port in ports.values():
                wait_for_port(port, 20.0)
            time.sleep(1.0)
            for url, kind, _ in targets.values():  # warm-up, not counted
                run(url, folder / f"{kind}.lua", 2, 8)
            for round_no in range(args.rounds):
                for connections in args.connections:
                    for tier, (url, kind, _) in targets.items():
                        r = run(url, folder / f"{kind}.lua", args.duration_s, connections)
                        results.setdefault((tier, connections), []).append(r)
                        print(
                            f"round {round_no + 1} c{connections:<3} {tier:12} "
                            f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                            f"p99 {r['p99_ms']:7.2f} ms",
                            flush=True,
                        )
        finally:
            stop(procs)
    report(results, args)
    return 0


def run(url: str, script: Path, duration_s: int, connections: int) -> dict[str, float]:
    if script.name == "keyed.lua":  # keys never seen before, in every run (no duplicates)
        script = script.with_name(f"keyed-{uuid.uuid4().hex}.lua")
        script.write_text(KEYED_LUA.replace("{prefix}", uuid.uuid4().hex))
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, *wrk_command(url, script, duration_s, connections, 1)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(url, out)


BASE = {"async+key": "async", "proxy+quota": "proxy+tenant"}
PAIRS = (("proxy", "aioproxy"), ("proxy", "nginx"), ("sync", "proxy"))
"""Further ratios reported per round: the first tier's req/s over the second's."""


def report(results: dict[tuple[str, int], list[dict[str, float]]], args: Any) -> None:
    print()
    print(f"wrk -t1 -d{args.duration_s}s, {args.rounds} rounds; {layout(args.redis_core)}")
    print(
        "ratio: median over rounds of tier req/s / base req/s of the same round (base: direct; "
        "for async+key: async; for proxy+quota: proxy+tenant); added: tier minus direct, same round"
    )
    print("| tier | connections | req/s | ratio | base | p50 added ms | p99 added ms |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for (tier, connections), rows in results.items():
        base = BASE.get(tier, "direct")
        bases = results[(base, connections)]
        direct = results[("direct", connections)]
        ratios = [r["rps"] / b["rps"] for r, b in zip(rows, bases, strict=True)]
        p50 = [r["p50_ms"] - d["p50_ms"] for r, d in zip(rows, direct, strict=True)]
        p99 = [r["p99_ms"] - d["p99_ms"] for r, d in zip(rows, direct, strict=True)]
        print(
            f"| {tier} | {connections} | {statistics.median(r['rps'] for r in rows):.0f} | "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {base} | "
            f"{statistics.median(p50):.2f} | {statistics.median(p99):.2f} |"
        )
    pairs = [
        (tier, base, connections)
        for tier, base in PAIRS
        for connections in args.connections
        if (tier, connections) in results and (base, connections) in results
    ]
    if pairs:
        print()
        print("| tier | over | connections | ratio (median, min-max) | p99 added, tier / over |")
        print("|---|---|---:|---:|---:|")
    for tier, base, connections in pairs:
        rows, bases = results[(tier, connections)], results[(base, connections)]
        direct = results[("direct", connections)]
        ratios = [r["rps"] / b["rps"] for r, b in zip(rows, bases, strict=True)]
        added = [
            (r["p99_ms"] - d["p99_ms"]) / max(b["p99_ms"] - d["p99_ms"], 1e-3)
            for r, b, d in zip(rows, bases, direct, strict=True)
        ]
        print(
            f"| {tier} | {base} | {connections} | {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(added):.1f}x |"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
