"""What the chart tests share: the chart, rendering it with the real Helm engine,
picking manifests out of a render.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "tidegate"

KUBERNETES = "1.34"

NON_DEFAULT: dict[str, Any] = {
    "redis": {"existingSecret": "shared-redis", "existingSecretKey": "url"},
    "gateway": {
        "replicas": 3,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": ["api.example.com"],
            "tls": [{"hosts": ["api.example.com"], "secretName": "api-tls"}],
        },
        "pdb": {"enabled": False},
        "config": {"max_header_bytes": 32768},
    },
    "routes": [
        {
            "name": "orders",
            "match": {"path_prefix": "/orders"},
            "mode": "async",
            "partitions": 3,
        },
        {
            "name": "reads",
            "match": {"path_prefix": "/orders", "methods": ["GET"]},
            "mode": "proxy",
            "upstream": "http://orders:8000",
        },
    ],
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    try:
        out = chart.render(values, name="shop", namespace="shop")
    finally:
        chart.close()
    return [
        doc
        for path, text in sorted(out.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def component(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in of_kind(docs, kind)
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]
    return found


def config_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    return found


# Kinds of the Prometheus Operator: not in the Kubernetes schemas; checked by shape.

OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

EVERYTHING: dict[str, Any] = {
    "scaler": {"namespaces": ["shop", "billing"], "replicas": 3},
    "tenants": {
        "list": [
            {
                "name": "acme",
                "api_key_sha256": "a" * 64,
                "quota": {"rate_per_s": 50, "burst": 100},
            }
        ]
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "podMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
    "routes": [
        {
            "name": "orders",
            "match": {"path_prefix": "/orders"},
            "scaler": {
                "target": {"kind": "deployment", "namespace": "shop", "name": "orders-worker"},
                "max_replicas": 20,
            },
        }
    ],
}


def known_metrics() -> set[str]:
    from gateway.metrics import GatewayMetrics
    from scaler.metrics import ScalerMetrics
    from worker.metrics import WorkerMetrics

    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for metrics in (GatewayMetrics(), WorkerMetrics(), ScalerMetrics()):
        for family in metrics.registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names
