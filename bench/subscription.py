"""What a done notification costs the gateway: CPU per message of a subscription.

Every sync request (and every request that waits for its result) ends with
one pub/sub message to the gateway that admitted it (``gateway.waiter``,
through ``tidegate.ledger.pubsub.Subscription``). This starts a redis-server,
subscribes to one channel with a handler that only counts, and has another
process publish ``--messages`` notifications one at a time (each its own
round trip, so each message comes on its own, as at low load). Printed: the
subscriber's CPU per message (``time.process_time`` from the first message
to the last), per round.

``--root DIR`` imports tidegate from another checkout, so two versions can
be compared in interleaved runs:

    git worktree add /tmp/old <commit>
    python bench/subscription.py --root /tmp/old; python bench/subscription.py

Usage: python bench/subscription.py [--messages 10000] [--rounds 3] [--root DIR]
Needs redis-server on PATH (or the embedded Valkey).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PUBLISHER = """
import sys
import redis
r = redis.Redis(port=int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    r.spublish("{orders}:done", b"orders.j%d\\nsucceeded\\n1700000000000\\n200\\n[]\\nok" % i)
"""
"""A notification as ``finish.lua`` sends it with a small result inline."""


async def one_round(port: int, messages: int, results: list[float]) -> None:
    """The subscriber's CPU per message, in us, appended to ``results``."""
    from tidegate.ledger.client import connect
    from tidegate.ledger.pubsub import Subscription
    from tidegate.settings import RedisSettings

    client = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
    count, first_cpu, all_in = 0, 0.0, asyncio.Event()
    spent: list[float] = []

    def on_message(_channel: str, _data: bytes) -> None:
        nonlocal count, first_cpu
        count += 1
        if count == 1:
            first_cpu = time.process_time()
        elif count == messages:
            spent.append(time.process_time() - first_cpu)
            all_in.set()

    async def caught_up() -> None:
        return None

    subscription = Subscription(
        client, ["{orders}:done"], on_message=on_message, on_subscribed=caught_up
    )
    subscription.start()
    await subscription.subscribed.wait()
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, str(port), str(messages)
    )
    try:
        await asyncio.wait_for(all_in.wait(), 120)
    finally:
        await publisher.wait()
        await subscription.close()
        await client.aclose()
    results.append(spent[0] / (messages - 1) * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    args = parser.parse_args()
    root = str(args.root.resolve())
    sys.path.insert(0, root)
    from shell.local_redis import free_port, start_redis_server, wait_for_port
    from tidegate.process import event_loop_name, run_on_loop

    results: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as folder:
        port = free_port()
        server = start_redis_server(port, folder)
        try:
            wait_for_port(port)
            for round_no in range(args.rounds):
                run_on_loop(one_round(port, args.messages, results), event_loop_name())
                print(f"round {round_no + 1}: {results[-1]:.1f} us of subscriber CPU per message")
        finally:
            server.terminate()
            server.wait()
    print(f"{root}: median {statistics.median(results):.1f} us per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
