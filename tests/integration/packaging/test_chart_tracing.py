"""The chart's tracing values: the standard OTEL_* variables, set per part."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from tests.integration.packaging.chart import KUBERNETES, component, render
from tests.integration.packaging.test_chart_workers import ORDERS, REPORTS, container, workers

ENDPOINT = "http://otel-collector.observability:4318"


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def otel(c: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env_of(c).items() if k.startswith("OTEL_")}


def gateway_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    picked: dict[str, Any] = found
    return picked


def test_off_by_default_no_part_has_an_otel_variable() -> None:
    docs = render({"workers": [ORDERS]})
    assert otel(gateway_container(docs)) == {}
    for deployment in workers({"workers": [ORDERS]}).values():
        assert otel(container(deployment)) == {}


def test_an_endpoint_turns_it_on_for_the_gateway_and_every_worker() -> None:
    values = {"tracing": {"endpoint": ENDPOINT}, "workers": [ORDERS, REPORTS]}
    docs = render(values)
    gateway = otel(gateway_container(docs))
    assert gateway == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "tidegate-gateway",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=shop",
    }
    names = {}
    for deployment in workers(values).values():
        env = otel(container(deployment))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT
        names[deployment["metadata"]["name"]] = env["OTEL_SERVICE_NAME"]
    assert names == {
        "shop-tidegate-worker-orders": "tidegate-worker-orders",
        "shop-tidegate-worker-reports": "tidegate-worker-reports",
    }
    scaler = component(docs, "Deployment", "scaler")["spec"]["template"]["spec"]["containers"][0]
    assert otel(scaler) == {}  # the scaler makes no spans
    for doc in docs:
        if doc["kind"] == "Deployment":
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_each_part_takes_its_own_values() -> None:
    values = {
        "tracing": {
            "endpoint": ENDPOINT,
            "sampler": "parentbased_always_on",
            "samplerArg": "0.25",
            "headersSecret": {"name": "collector-auth", "key": "otlp-headers"},
            "resourceAttributes": "deployment.environment=prod,team=shop",
        },
        "gateway": {"tracing": {"serviceName": "shop-edge"}},
        "workerDefaults": {"tracing": {"serviceName": "shop-workers"}},
        "workers": [ORDERS, {**REPORTS, "tracing": {"enabled": False}}],
    }
    docs = render(values)
    gateway = otel(gateway_container(docs))
    assert gateway["OTEL_SERVICE_NAME"] == "shop-edge"
    assert gateway["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert gateway["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert gateway["OTEL_EXPORTER_OTLP_HEADERS"] == {
        "secretKeyRef": {"name": "collector-auth", "key": "otlp-headers"}
    }
    assert gateway["OTEL_RESOURCE_ATTRIBUTES"] == (
        "k8s.namespace.name=shop,deployment.environment=prod,team=shop"
    )
    deployments = workers(values)
    orders = otel(container(deployments["shop-tidegate-worker-orders"]))
    assert orders["OTEL_SERVICE_NAME"] == "shop-workers"
    assert otel(container(deployments["shop-tidegate-worker-reports"])) == {}
    off = render({"tracing": {"endpoint": ENDPOINT}, "gateway": {"tracing": {"enabled": False}}})
    assert otel(gateway_container(off)) == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"tracing": {"endpoint": "otel-collector:4318"}},  # no scheme
        {"tracing": {"endpoint": "grpc://collector:4317"}},
        {"tracing": {"sampler": "sometimes"}},
        {"tracing": {"samplerArg": "1.5"}},
        {"tracing": {"samplerArg": "half"}},
        {"tracing": {"resourceAttributes": "no equals sign"}},
        {"tracing": {"exporter": "zipkin"}},
        {"tracing": {"headersSecret": {"name": "x", "key": ""}}},
        {"gateway": {"tracing": {"enabled": "yes"}}},
        {"workerDefaults": {"tracing": {"sampler": "always_on"}}},
    ],
)
def test_the_schema_refuses_tracing_values_that_cannot_work(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(bad)
