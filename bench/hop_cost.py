"""What one hop between two processes costs on this machine: an asyncio echo.

A server process and a client process exchange ``--trips`` messages of 50
bytes over loopback TCP, one at a time, first both pinned to core 1, then on
cores 0 and 1. Printed: the round-trip time and the client's CPU (user +
system) per round trip. Every part of tidegate's sync path is such a hop
(admission, the worker's read, the start, the service, the finish, the
notification), so this is the floor under its added latency.

With ``--gaps-ms 0 1 5 20``, every trip first waits that long with nothing
to do (as a lone sync request's hops do: each process slept since its last
job): a round trip after an idle gap costs what a hop of a request arriving
on a quiet system costs. Only the round trip is timed, not the gap.

Usage: python bench/hop_cost.py [--trips 5000] [--gaps-ms 0 1 5 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from shell.local_redis import free_port, wait_for_port  # noqa: E402


async def serve(port: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)

    server = await asyncio.start_server(echo, "127.0.0.1", port)
    await server.serve_forever()


async def trips(port: int, count: int, gap_s: float) -> tuple[float, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wall_s = cpu_s = 0.0
    for _ in range(count):
        if gap_s:
            await asyncio.sleep(gap_s)
        wall, cpu = time.perf_counter(), time.process_time()
        writer.write(b"x" * 50)
        await reader.read(100)
        wall_s += time.perf_counter() - wall
        cpu_s += time.process_time() - cpu
    writer.close()
    return wall_s / count, cpu_s / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=5000)
    parser.add_argument("--gaps-ms", type=float, nargs="+", default=[0.0])
    parser.add_argument("--gap-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    if args.client:
        rtt_s, cpu_s = asyncio.run(trips(args.client, args.trips, args.gap_ms / 1000))
        print(f"{rtt_s * 1e6:.0f} {cpu_s * 1e6:.0f}")
        return 0
    print("| placement | idle gap (ms) | round trip (us) | client CPU per round trip (us) |")
    print("|---|---:|---:|---:|")
    placements = (("one core", "1", "1"), ("two cores", "0", "1"))
    for (label, server_core, client_core), gap_ms in itertools.product(placements, args.gaps_ms):
        # a quiet system's trips are few: 1000 at most, or 20 s of gaps
        count = args.trips if not gap_ms else min(args.trips, 1000, int(20_000 / gap_ms))
        port = free_port()
        me = [sys.executable, __file__]
        server = subprocess.Popen(["taskset", "-c", server_core, *me, "--serve", str(port)])
        try:
            wait_for_port(port)
            out = subprocess.run(
                [
                    "taskset",
                    "-c",
                    client_core,
                    *me,
                    "--client",
                    str(port),
                    "--trips",
                    str(count),
                    "--gap-ms",
                    str(gap_ms),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            print(f"| {label} | {gap_ms:g} | {out[0]} | {out[1]} |")
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
