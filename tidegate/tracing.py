"""Spans across the queue: OpenTelemetry, when it is asked for.

``tidegate.trace_context`` passes the client's W3C trace context on whatever
happens here; this module adds tidegate's own spans to that trace, so a
request shows as one trace from the gateway through the queue to the service
and the completion callback:

- the gateway: ``{method} {route prefix}`` (SERVER, the whole request, sync
  wait included), and under it ``send {route}`` (PRODUCER, the admission) or
  ``{method}`` (CLIENT, the proxied call). A queued job keeps the send span's
  context as its trace context (among its headers, so it survives reclaim,
  retries and replay);
- the worker, per attempt: ``process {route}`` (CONSUMER), a child of the send
  span with a link to it (the time queued is the gap between them, not a
  child's work), and under it ``{method}`` (CLIENT, the relay's call to the
  service, which receives that span as its parent) or the handler run inside
  it, and ``finish {route}`` (recording the outcome);
- the callback sender: ``callback {state}`` (CLIENT), a child of the send span.

Attributes follow the OpenTelemetry semantic conventions for HTTP
(``http.request.method``, ``url.path``, ``http.route``,
``http.response.status_code``, ``server.address``...) and messaging
(``messaging.system`` "tidegate", ``messaging.destination.name`` the route,
``messaging.message.id`` the job id, ``messaging.operation.type``), plus
``tidegate.tenant`` and ``tidegate.job.attempt``.

Configuration is OpenTelemetry's own, from the environment only: tracing is on
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set or
``OTEL_TRACES_EXPORTER`` names ``otlp`` or ``console``, unless
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The SDK reads the
rest itself (``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES``, the exporter's headers, timeout and
compression, the batch processor's limits). The exporter is OTLP over HTTP
(protobuf); the SDK and it are the ``tidegate[otel]`` extra, imported only
when tracing is on: asked for without them is one ``ConfigError`` line.

Off (the default), ``ACTIVE`` is None and every call site tests that and
nothing else: no SDK imported, no span object made.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from tidegate import __version__
from tidegate.errors import ConfigError
from tidegate.trace_context import TraceContext

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span as Span  # the parts' spans are typed by it
    from opentelemetry.trace import SpanContext, Tracer
    from opentelemetry.util.types import AttributeValue as AttributeValue

log = logging.getLogger(__name__)

Kind = Literal["server", "client", "producer", "consumer", "internal"]
Attributes = Mapping[str, "AttributeValue"]

MESSAGING_SYSTEM = "tidegate"
EXPORTERS = ("otlp", "console", "none")
EXTRA_MISSING = (
    "tracing is asked for ({why}) but the OpenTelemetry SDK is not installed here: "
    "pip install 'tidegate[otel]', or unset it"
)

ACTIVE: Tracing | None = None
"""The process's tracing, once ``start`` turned it on; None while off."""


def wanted(env: Mapping[str, str] = os.environ) -> str | None:
    """Why tracing is on (the variable that asks for it), or None when off.

    Raises ConfigError for an exporter or protocol this build cannot serve."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = _exporters(env)
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown:
        raise ConfigError(
            [f"OTEL_TRACES_EXPORTER={','.join(unknown)}: choose from {', '.join(EXPORTERS)}"]
        )
    if "none" in exporters:
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol and protocol != "http/protobuf":
        raise ConfigError(
            [f"OTLP protocol {protocol!r}: tidegate exports spans over http/protobuf only"]
        )
    if exporters:
        return f"OTEL_TRACES_EXPORTER={','.join(exporters)}"
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if env.get(name, "").strip():
            return f"{name} is set"
    return None


def _exporters(env: Mapping[str, str]) -> list[str]:
    names = (e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(","))
    return [e for e in names if e]


def start(part: str, env: Mapping[str, str] = os.environ) -> Tracing | None:
    """Turn tracing on for this process when the environment asks for it
    (``wanted``); ``part`` names the service when ``OTEL_SERVICE_NAME`` does not.

    Raises ConfigError (one line) when it is asked for and cannot be had."""
    global ACTIVE
    why = wanted(env)
    if why is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        raise ConfigError([EXTRA_MISSING.format(why=why)]) from None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": f"tidegate-{part}"}))
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    names = _exporters(env) or ["otlp"]
    chosen: list[SpanExporter] = []
    if "console" in names:
        chosen.append(ConsoleSpanExporter())
    if "otlp" in names:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError([EXTRA_MISSING.format(why=why)]) from None
        chosen.append(OTLPSpanExporter())
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # The process's provider: a handler's own spans (opentelemetry.trace.get_tracer)
    # and any instrumentation it installs export the same way, under our spans.
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    ACTIVE = Tracing(provider)
    log.info("tracing on (%s): spans of %s", why, resource.attributes.get("service.name"))
    return ACTIVE


def stop() -> None:
    """Send the spans still buffered and turn tracing off (a part's exit)."""
    global ACTIVE
    if ACTIVE is not None:
        ACTIVE.provider.shutdown()
        ACTIVE = None


def current() -> TraceContext | None:
    """The context that continues the trace from the current span; None
    while tracing is off (the client's context is passed on as it came)."""
    return None if ACTIVE is None else ACTIVE.current_context()


def current_span() -> Span | None:
    """The current span while tracing is on and one is current, else None."""
    if ACTIVE is None:
        return None
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


class Tracing:
    """The spans a part starts; made by ``start`` (tests may build one on a
    provider of their own)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("tidegate", __version__)
        self._trace = trace
        self._kinds = {
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
            "producer": trace.SpanKind.PRODUCER,
            "consumer": trace.SpanKind.CONSUMER,
            "internal": trace.SpanKind.INTERNAL,
        }

    def span(
        self,
        name: str,
        kind: Kind,
        attributes: Attributes,
        *,
        parent: TraceContext | None = None,
        linked: Sequence[TraceContext] = (),
    ) -> Span:
        """A started span: a child of ``parent`` when given (a context from
        another process), else of the current span (a new trace when none)."""
        links = [self._trace.Link(self._span_context(t)) for t in linked]
        return self.tracer.start_span(
            name,
            self._otel_context(parent) if parent is not None else None,
            self._kinds[kind],
            attributes,
            links,
            record_exception=False,
            set_status_on_exception=False,
        )

    @contextmanager
    def current(self, span: Span) -> Iterator[Span]:
        """``span`` as the current span inside the block (children, a
        handler's own spans), ended when the block is left."""
        with self._trace.use_span(span, end_on_exit=True, record_exception=False):
            yield span

    @staticmethod
    def failed(span: Span, description: str) -> None:
        """Mark ``span`` as an error (a 5xx answered, a failed attempt)."""
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR, description)

    @staticmethod
    def context_of(span: Span) -> TraceContext:
        """The W3C context that continues the trace from ``span``."""
        sc = span.get_span_context()
        return TraceContext(
            format(sc.trace_id, "032x"),
            format(sc.span_id, "016x"),
            format(sc.trace_flags, "02x"),
            sc.trace_state.to_header() if sc.trace_state else "",
        )

    def current_context(self) -> TraceContext | None:
        """The context of the current span, None when there is none."""
        span = self._trace.get_current_span()
        return self.context_of(span) if span.get_span_context().is_valid else None

    def _span_context(self, trace: TraceContext) -> SpanContext:
        from opentelemetry.trace import SpanContext, TraceFlags, TraceState

        state = TraceState.from_header([trace.state]) if trace.state else None
        return SpanContext(
            int(trace.trace_id, 16),
            int(trace.parent_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(trace.flags, 16)),
            trace_state=state,
        )

    def _otel_context(self, trace: TraceContext) -> Context:
        span = self._trace.NonRecordingSpan(self._span_context(trace))
        return self._trace.set_span_in_context(span)
