"""The floor under a sync route: the least a queue between two HTTP hops costs.

Two processes that do only what any sync request through a Redis Stream
must do, with none of what tidegate keeps besides (no event log, no
projection, no stored result, no deadline, no idempotency, no retries, no
metrics), on uvloop as tidegate's parts run:

- ``gateway PORT REDIS_URL``: an aiohttp handler reads the body, adds one
  entry (id, body) to a stream with XADD, and waits for the id on its done
  channel, which one Pub/Sub connection reads for every request; it answers
  201 with the body the worker published.
  A POST to ``/async`` adds its entry to another stream, which no worker
  reads, and answers 202 at once: the floor under async admission.
- ``worker REDIS_URL UPSTREAM_URL``: reads entries with XREADGROUP (COUNT 64,
  BLOCK), calls the service for each (tidegate's own lean HTTP client, the
  relay's), then acknowledges the entry and publishes the answer in one
  round trip (a pipeline of XACK and PUBLISH).

``bench/sync_cpu.py --tiers floor floor-async`` measures them beside the
real routes (every process counted the same way): how far the product's
CPU per request is above what the path itself costs in Python on this
machine.

Usage: python bench/floor.py gateway PORT REDIS_URL | worker REDIS_URL UPSTREAM_URL
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import uvloop
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ResponseError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tidegate.upstream import Upstream

STREAM = "floor:requests"
QUEUED = "floor:queued"
GROUP = "floor"
DONE = "floor:done"


def gateway_app(redis_url: str) -> web.Application:
    redis = Redis.from_url(redis_url)
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    counter = iter(range(1 << 62))
    prefix = f"{os.getpid()}-".encode()

    async def listen(app: web.Application) -> None:
        pubsub = redis.pubsub()
        await pubsub.subscribe(DONE)

        async def read() -> None:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None or message["type"] != "message":
                    continue
                job, _, body = message["data"].partition(b"\n")
                future = waiting.pop(job, None)
                if future is not None and not future.done():
                    future.set_result(body)

        app["reader"] = asyncio.get_running_loop().create_task(read())

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        job = prefix + str(next(counter)).encode()
        if request.path == "/async":
            await redis.xadd(QUEUED, {"id": job, "body": body})
            return web.json_response({"id": job.decode(), "state": "queued"}, status=202)
        future = asyncio.get_running_loop().create_future()
        waiting[job] = future
        await redis.xadd(STREAM, {"id": job, "body": body})
        answer = await future
        return web.Response(status=201, body=answer, content_type="application/json")

    app = web.Application()
    app.on_startup.append(listen)
    app.router.add_post("/{tail:.*}", handle)
    return app


async def work(redis_url: str, upstream_url: str) -> None:
    redis = Redis.from_url(redis_url)
    reader = Redis.from_url(redis_url)
    upstream = Upstream(upstream_url)
    with contextlib.suppress(ResponseError):  # BUSYGROUP: an earlier run made it
        await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    tasks: set[asyncio.Task[None]] = set()

    async def run(entry: bytes, fields: dict[bytes, bytes]) -> None:
        answer = await upstream.request(
            "POST",
            "/x",
            [("Content-Type", "application/json")],
            fields[b"body"],
            timeout_s=10.0,
            max_body_bytes=1 << 20,
        )
        pipe = redis.pipeline(transaction=False)
        pipe.xack(STREAM, GROUP, entry)
        pipe.publish(DONE, fields[b"id"] + b"\n" + answer.body)
        await pipe.execute()

    while True:
        read: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None
        read = await reader.xreadgroup(  # type: ignore[assignment]
            GROUP, "c1", {STREAM: ">"}, count=64, block=1000
        )
        for _, entries in read or []:
            for entry, fields in entries:
                task = asyncio.create_task(run(entry, fields))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    if sys.argv[1] == "gateway":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        app = gateway_app(sys.argv[3])
        web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
    else:
        uvloop.run(work(sys.argv[2], sys.argv[3]))
