"""What one hop between two processes costs on this machine: an asyncio echo.

A server process and a client process exchange ``--trips`` messages of 50
bytes over loopback TCP, one at a time, first both pinned to core 1, then on
cores 0 and 1. Printed: the round-trip time and the client's CPU (user +
system) per round trip. Every part of tidegate's sync path is such a hop
(admission, the worker's read, the start, the service, the finish, the
notification), so this is the floor under its added latency.

Usage: python bench/hop_cost.py [--trips 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tidegate.shell.local_redis import free_port, wait_for_port  # noqa: E402


async def serve(port: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)

    server = await asyncio.start_server(echo, "127.0.0.1", port)
    await server.serve_forever()


async def trips(port: int, count: int) -> tuple[float, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        writer.write(b"x" * 50)
        await reader.read(100)
    per_trip_s = (time.perf_counter() - wall) / count
    writer.close()
    return per_trip_s, (time.process_time() - cpu) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=5000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    if args.client:
        rtt_s, cpu_s = asyncio.run(trips(args.client, args.trips))
        print(f"{rtt_s * 1e6:.0f} {cpu_s * 1e6:.0f}")
        return 0
    print("| placement | round trip (us) | client CPU per round trip (us) |")
    print("|---|---:|---:|")
    for label, server_core, client_core in (("one core", "1", "1"), ("two cores", "0", "1")):
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
                    str(args.trips),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            print(f"| {label} | {out[0]} | {out[1]} |")
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
