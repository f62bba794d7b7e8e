"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk
embeds it), every manifest validated against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tidegate.settings import parse_settings

CHART = Path(__file__).resolve().parent.parent / "charts" / "tidegate"
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
        {"name": "orders", "match": {"path_prefix": "/orders"}, "mode": "async"},
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


def test_lint_is_clean_in_strict_mode() -> None:
    for values in (None, NON_DEFAULT):
        report = helm.lint(CHART, values, strict=True)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_every_manifest_is_valid_kubernetes(values: dict[str, Any] | None) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_rendered_config_is_one_tidegate_check_accepts(values: dict[str, Any] | None) -> None:
    (config_map,) = of_kind(render(values), "ConfigMap")
    raw = yaml.safe_load(config_map["data"]["tidegate.yaml"])
    settings = parse_settings(raw, env={"TIDEGATE_REDIS_URL": "redis://redis:6379/0"})
    assert settings.gateway.listen == "0.0.0.0:8080"
    assert [r.name for r in settings.routes] == [
        r["name"] for r in (values or {}).get("routes", [{"name": "orders"}])
    ]


def test_pods_are_secure_by_default() -> None:
    (deployment,) = of_kind(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_redis_url_comes_from_a_secret() -> None:
    default = render()
    (secret,) = of_kind(default, "Secret")
    (deployment,) = of_kind(default, "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = env[0]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], "redis-url")
    custom = render(NON_DEFAULT)
    assert of_kind(custom, "Secret") == []  # existingSecret: the chart creates none
    (deployment,) = of_kind(custom, "Deployment")
    ref = deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
    assert ref["secretKeyRef"] == {"name": "shared-redis", "key": "url"}


def test_names_are_cut_to_63_characters() -> None:
    docs = render({"fullnameOverride": "x" * 80})
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63
        assert all(len(v) <= 63 for v in doc["metadata"]["labels"].values())


@pytest.mark.parametrize(
    "values",
    [
        {"bogus": 1},
        {"gateway": {"replica": 2}},
        {"redis": {"url": "http://not-redis"}},
        {"routes": [{"name": "Bad_Name", "match": {}}]},
    ],
)
def test_schema_rejects_unknown_and_malformed_values(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(values)
