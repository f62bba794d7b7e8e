"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk
embeds it), every manifest validated against the Kubernetes schemas."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from scaler.resources import parse as parse_backlog_scaler
from tidegate.settings import ScalerSettings, parse_settings

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


CRD = CHART / "crds" / "backlogscalers.tidegate.io.yaml"
EXAMPLE = CHART / "examples" / "backlogscaler.yaml"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_the_crd_is_valid_kubernetes_with_status_and_columns() -> None:
    crd = yaml.safe_load(CRD.read_text())
    kubernetes_validate.validate(crd, KUBERNETES, strict=True)
    (version,) = crd["spec"]["versions"]
    assert crd["spec"]["group"] == "tidegate.io"
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Route", "Desired", "Lag", "Throttled"} <= columns


def test_the_crd_accepts_the_example_and_rejects_malformed_ones() -> None:
    # OpenAPI v3.0 schemas (boolean exclusiveMinimum) read as JSON Schema draft 4.
    validator = jsonschema.Draft4Validator(crd_schema())
    example = yaml.safe_load(EXAMPLE.read_text())
    validator.validate(example)
    for broken in (
        {"spec": {"target": {"name": "w"}}},  # no route
        {"spec": {"route": "Orders!", "target": {"name": "w"}}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "max_replicas": "many"}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "interval_s": 0}},
        {"spec": {"route": "orders", "target": {"kind": "local", "name": "w"}}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "throttle": {"status": 418}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)


def test_the_crd_matches_the_scaler_settings() -> None:
    """Every spec key is a ScalerSettings field, and the scaler reads the example."""
    spec = crd_schema()["properties"]["spec"]["properties"]
    fields = {f.name for f in dataclasses.fields(ScalerSettings)}
    assert set(spec) - {"route"} == fields
    example = yaml.safe_load(EXAMPLE.read_text())
    parsed = parse_backlog_scaler(example)
    assert parsed.error is None
    assert parsed.settings is not None
    assert parsed.settings.target.namespace == "shop"  # defaulted from the resource
