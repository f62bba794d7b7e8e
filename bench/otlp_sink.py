"""A collector stand-in for ``bench/sync_cpu.py --tracing``: takes OTLP/HTTP
exports, counts their spans (decoded with opentelemetry-proto, as a collector
would) and answers ``GET /count`` with the total, so the bench can say
whether every span of the window arrived or the exporters dropped some.

Usage: python bench/otlp_sink.py PORT
"""

from __future__ import annotations

import sys

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ANSWER = ExportTraceServiceResponse().SerializeToString()
SPANS = web.AppKey("spans", list)


async def export(request: web.Request) -> web.Response:
    message = ExportTraceServiceRequest()
    message.ParseFromString(await request.read())
    request.app[SPANS][0] += sum(
        len(scope.spans) for resource in message.resource_spans for scope in resource.scope_spans
    )
    return web.Response(body=ANSWER, content_type="application/x-protobuf")


async def count(request: web.Request) -> web.Response:
    return web.json_response({"spans": request.app[SPANS][0]})


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SPANS] = [0]
    app.router.add_post("/v1/traces", export)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
