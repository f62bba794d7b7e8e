"""tidegate.tracing: when tracing is on, what a missing extra says, and the
spans' contexts as W3C contexts (an in-memory exporter stands for OTLP)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tidegate import trace_context, tracing
from tidegate.errors import ConfigError
from tidegate.trace_context import TraceContext

ENDPOINT = "http://collector:4318"
CLIENT = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01", "k=v,o=1")


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, "OTEL_EXPORTER_OTLP_ENDPOINT is set"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "OTEL_TRACES_EXPORTER=otlp"),
        ({"OTEL_TRACES_EXPORTER": " Console , otlp"}, "OTEL_TRACES_EXPORTER=console,otlp"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, None),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, None),
        (
            {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
            "OTEL_EXPORTER_OTLP_ENDPOINT is set",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
            },
            "OTEL_EXPORTER_OTLP_ENDPOINT is set",
        ),
    ],
)
def test_tracing_is_on_only_when_the_environment_asks(env: dict[str, str], why: str | None) -> None:
    assert tracing.wanted(env) == why


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: choose from"),
        ({"OTEL_TRACES_EXPORTER": "otlp,jaeger"}, "OTEL_TRACES_EXPORTER=jaeger"),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
            "http/protobuf only",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_TRACES_EXPORTER": "otlp"},
            "'http/json'",
        ),
    ],
)
def test_what_cannot_be_served_is_one_config_error(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError) as raised:
        tracing.wanted(env)
    (problem,) = raised.value.problems
    assert said in problem


@pytest.fixture
def stopped() -> Iterator[None]:
    yield
    tracing.stop()
    assert tracing.ACTIVE is None


@pytest.mark.parametrize(
    "blocked", ["opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"]
)
def test_asked_for_without_the_extra_is_one_line_naming_it(
    blocked: str, monkeypatch: pytest.MonkeyPatch, stopped: None
) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)  # import fails as if not installed
    with pytest.raises(ConfigError) as raised:
        tracing.start("gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT})
    (problem,) = raised.value.problems
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set" in problem
    assert "pip install 'tidegate[otel]'" in problem
    assert "\n" not in problem
    assert tracing.ACTIVE is None


def test_off_by_default_nothing_is_made(stopped: None) -> None:
    assert tracing.start("gateway", {}) is None
    assert tracing.ACTIVE is None
    assert tracing.current() is None


@pytest.mark.parametrize(
    ("env", "service"),
    [
        ({}, "tidegate-worker"),
        ({"OTEL_SERVICE_NAME": "orders-worker"}, "orders-worker"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=a"}, "billing"),
    ],
)
def test_the_service_is_named_after_the_part_unless_the_environment_names_it(
    env: dict[str, str], service: str, monkeypatch: pytest.MonkeyPatch, stopped: None
) -> None:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the SDK's resource reads the process's environment
    active = tracing.start("worker", {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, **env})
    assert active is not None
    assert tracing.ACTIVE is active
    assert active.provider.resource.attributes["service.name"] == service


@pytest.fixture
def memory() -> tuple[tracing.Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing.Tracing(provider), exporter


def test_a_span_continues_a_context_from_another_process(
    memory: tuple[tracing.Tracing, InMemorySpanExporter],
) -> None:
    active, exporter = memory
    span = active.span("process r", "consumer", {"a": 1}, parent=CLIENT, linked=[CLIENT])
    passed_on = active.context_of(span)
    span.end()
    (done,) = exporter.get_finished_spans()
    assert done.parent is not None
    assert format(done.parent.span_id, "016x") == CLIENT.parent_id
    assert format(done.context.trace_id, "032x") == CLIENT.trace_id
    (link,) = done.links
    assert format(link.context.span_id, "016x") == CLIENT.parent_id
    assert passed_on.trace_id == CLIENT.trace_id
    assert passed_on.parent_id == format(done.context.span_id, "016x")
    assert passed_on.state == "k=v,o=1"  # the client's tracestate goes on
    assert passed_on.sampled


def test_an_unsampled_context_is_continued_and_not_recorded(
    memory: tuple[tracing.Tracing, InMemorySpanExporter],
) -> None:
    active, exporter = memory
    quiet = CLIENT._replace(flags="00")
    span = active.span("send r", "producer", {}, parent=quiet)
    passed_on = active.context_of(span)
    span.end()
    assert exporter.get_finished_spans() == ()
    assert (passed_on.trace_id, passed_on.sampled) == (CLIENT.trace_id, False)
    assert passed_on.parent_id != CLIENT.parent_id


def test_children_nest_under_the_current_span(
    memory: tuple[tracing.Tracing, InMemorySpanExporter],
) -> None:
    active, exporter = memory
    root = active.span("GET /r", "server", {})
    assert active.current_context() is None
    with active.current(root):
        assert active.current_context() == active.context_of(root)
        child = active.span("send r", "producer", {})
        child.end()
    names = {s.name: s for s in exporter.get_finished_spans()}
    assert names["GET /r"].parent is None  # a new trace
    assert names["send r"].parent is not None
    assert names["send r"].parent.span_id == names["GET /r"].context.span_id


@pytest.mark.parametrize(
    "sent",
    [
        "k=v",
        "t0@sys=v,other=1",
        "a=b c",
        "a-b*c/d=1,z=!",
        "0tenant@s=1",
        " a=1 , b=2 ",
        ",".join(f"k{i}=v" for i in range(32)),
        "a=" + "x" * 256,
        ",".join(f"k{i}=" + "v" * 30 for i in range(20)),  # over 512 characters: cut
    ],
)
def test_every_tracestate_the_gateway_keeps_the_sdk_keeps_too(
    sent: str,
    memory: tuple[tracing.Tracing, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What ``trace_context.parse`` accepts, the SDK takes as it is: no
    member lost on the way, and no warning a client could make us log."""
    checked = trace_context.parse([f"00-{CLIENT.trace_id}-{CLIENT.parent_id}-01"], [sent])
    assert checked is not None
    assert checked.state
    active, _ = memory
    span = active.span("send r", "producer", {}, parent=checked)
    assert active.context_of(span).state == checked.state
    span.end()
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
