"""An OTLP/HTTP trace receiver for the tests: what a collector's
``/v1/traces`` endpoint does, decoded with ``opentelemetry-proto`` (the
protocol's own messages), in a thread so processes of any kind can export to
it. Spans are kept as plain records; ``tree`` renders a trace the way a
viewer lists it (docs/tracing.md shows one).

Run alone (``python -m tests.otlp_receiver PORT``) it prints each trace's
tree as spans arrive, for a look at what a local setup exports.
"""

from __future__ import annotations

import gzip
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

KINDS = {
    value: name.removeprefix("SPAN_KIND_").lower() for name, value in ProtoSpan.SpanKind.items()
}


@dataclass(frozen=True)
class Span:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    """'' for a trace's root."""
    name: str
    kind: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]
    """(trace id, span id) of each link."""
    error: bool
    start_ns: int
    end_ns: int

    def attr(self, name: str) -> Any:
        return self.attributes.get(name)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    """The spans of one export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                out.append(
                    Span(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS[span.kind],
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                        error=span.status.code == Status.STATUS_CODE_ERROR,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return out


@dataclass
class Receiver:
    """Listens on 127.0.0.1:``port`` (0: a free one) until ``close``."""

    port: int = 0
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver.received(decode(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set to (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def received(self, spans: list[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)
            self.requests += 1

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def named(self, name: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def tree(spans: list[Span]) -> str:
    """The spans of one trace as an indented tree, children by start time,
    with each span's service, kind, duration and links (for a link, how long
    after the linked span ended this one started: the time queued)."""
    by_parent: dict[str, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        parent = span.parent_id if span.parent_id in ids else ""
        by_parent.setdefault(parent, []).append(span)
    known = {s.span_id: s for s in spans}
    lines: list[str] = []

    def linked(span_id: str, start_ns: int) -> str:
        target = known.get(span_id)
        if target is None:
            return f"  (link: {span_id})"
        waited_ms = (start_ns - target.end_ns) / 1e6
        return f"  (link: {target.name}, {waited_ms:.1f} ms after it ended)"

    def walk(parent: str, depth: int) -> None:
        for span in by_parent.get(parent, []):
            ms = (span.end_ns - span.start_ns) / 1e6
            link = "".join(linked(sid, span.start_ns) for _, sid in span.links)
            mark = "  ERROR" if span.error else ""
            lines.append(
                f"{'  ' * depth}{span.name}  [{span.service}, {span.kind}, {ms:.1f} ms]{mark}{link}"
            )
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a tool for a person
    import time

    receiver = Receiver(int(sys.argv[1]) if len(sys.argv) > 1 else 4318)
    print(f"listening on {receiver.endpoint}/v1/traces", flush=True)
    shown = 0
    while True:
        time.sleep(1)
        with receiver._lock:
            fresh = receiver.spans[shown:]
            shown = len(receiver.spans)
        for trace_id in dict.fromkeys(s.trace_id for s in fresh):
            print(f"trace {trace_id}\n{tree(receiver.trace(trace_id))}\n", flush=True)
