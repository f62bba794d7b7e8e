"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk
embeds it), every manifest validated against the Kubernetes schemas."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from scaler.resources import parse as parse_backlog_scaler
from tidegate.settings import ScalerSettings, parse_settings

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
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


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
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_rendered_config_is_one_tidegate_check_accepts(values: dict[str, Any] | None) -> None:
    raw = yaml.safe_load(config_map(render(values))["data"]["tidegate.yaml"])
    settings = parse_settings(raw, env={"TIDEGATE_REDIS_URL": "redis://redis:6379/0"})
    assert settings.gateway.listen == "0.0.0.0:8080"
    assert [r.name for r in settings.routes] == [
        r["name"] for r in (values or {}).get("routes", [{"name": "orders"}])
    ]


@pytest.mark.parametrize("part", ["gateway", "scaler"])
def test_pods_are_secure_by_default(part: str) -> None:
    deployment = component(render(), "Deployment", part)
    pod = deployment["spec"]["template"]["spec"]
    # Only the scaler talks to the Kubernetes API.
    assert pod["automountServiceAccountToken"] is (part == "scaler")
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
    deployment = component(default, "Deployment", "gateway")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = env[0]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], "redis-url")
    custom = render(NON_DEFAULT)
    assert of_kind(custom, "Secret") == []  # existingSecret: the chart creates none
    deployment = component(custom, "Deployment", "gateway")
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


def test_everything_on_is_valid_and_checks_as_a_config() -> None:
    docs = render(EVERYTHING)
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    raw = yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"])
    settings = parse_settings(raw, env={"TIDEGATE_REDIS_URL": "redis://redis:6379/0"})
    assert settings.scaler.namespaces == ("shop", "billing")
    assert settings.scaler.lease_namespace == "shop"
    assert settings.routes[0].scaler is not None
    report = helm.lint(CHART, EVERYTHING, strict=True)
    assert report["errors"] == []


def test_scaler_rbac_is_least_privilege() -> None:
    docs = render(EVERYTHING)
    assert of_kind(docs, "ClusterRole") == []
    assert of_kind(docs, "ClusterRoleBinding") == []
    roles = of_kind(docs, "Role")
    rules = [rule for role in roles for rule in role["rules"]]
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    by_resource: dict[str, set[str]] = {}
    for rule in rules:
        for resource in rule["resources"]:
            by_resource.setdefault(resource, set()).update(rule["verbs"])
    assert by_resource["deployments"] == {"get"}  # read only: never a whole Deployment
    assert by_resource["deployments/scale"] <= {"get", "update", "patch"}
    assert by_resource["leases"] <= {"get", "create", "update"}
    assert by_resource["backlogscalers"] <= {"get", "list", "watch"}
    assert by_resource["backlogscalers/status"] <= {"get", "update", "patch"}
    assert by_resource["events"] <= {"create", "patch"}
    assert set(by_resource) == {
        "deployments",
        "deployments/scale",
        "leases",
        "backlogscalers",
        "backlogscalers/status",
        "events",
    }
    # A Role and its binding in every watched namespace; the Lease only at home.
    scaling = {r["metadata"].get("namespace") for r in roles if "leases" not in str(r["rules"])}
    assert scaling == {"shop", "billing"}
    (account,) = of_kind(docs, "ServiceAccount")
    for binding in of_kind(docs, "RoleBinding"):
        (subject,) = binding["subjects"]
        assert subject["name"] == account["metadata"]["name"]
    scaler = component(docs, "Deployment", "scaler")
    assert scaler["spec"]["replicas"] == 3
    assert scaler["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    # No other pod gets the scaler's account or a token.
    gateway = component(docs, "Deployment", "gateway")
    assert "serviceAccountName" not in gateway["spec"]["template"]["spec"]


def test_the_scaler_can_be_left_out() -> None:
    docs = render({"scaler": {"enabled": False}})
    assert [d["kind"] for d in docs if "scaler" in d["metadata"]["name"]] == []


def test_tenants_come_from_a_secret_mounted_where_the_config_says() -> None:
    docs = render(EVERYTHING)
    raw = yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"])
    tenants_secret = next(s for s in of_kind(docs, "Secret") if "tenants" in s["metadata"]["name"])
    tenants = yaml.safe_load(tenants_secret["stringData"]["tenants.yaml"])
    assert tenants == EVERYTHING["tenants"]["list"]
    gateway = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    (volume,) = [v for v in gateway["volumes"] if v["name"] == "tenants"]
    assert volume["secret"]["secretName"] == tenants_secret["metadata"]["name"]
    (mount,) = [m for m in gateway["containers"][0]["volumeMounts"] if m["name"] == "tenants"]
    assert raw["tenants_file"] == mount["mountPath"] + "/" + volume["secret"]["items"][0]["path"]
    existing = render({"tenants": {"existingSecret": "our-keys", "existingSecretKey": "k"}})
    assert not [s for s in of_kind(existing, "Secret") if "tenants" in s["metadata"]["name"]]
    pod = component(existing, "Deployment", "gateway")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tenants"]
    assert volume["secret"]["secretName"] == "our-keys"
    assert volume["secret"]["items"] == [{"key": "k", "path": "tenants.yaml"}]


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


def test_alerts_and_dashboard_use_metrics_that_exist() -> None:
    docs = render(EVERYTHING)
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "admin"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s for s in of_kind(docs, "Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert {
        component
        for s in services
        for component in [s["metadata"]["labels"]["app.kubernetes.io/component"]]
    } == {"gateway", "scaler"}
    assert all(any(p["name"] == "admin" for p in s["spec"]["ports"]) for s in services)
    assert all(s["spec"]["type"] == "ClusterIP" for s in services)


def test_the_admin_port_is_never_on_the_public_service() -> None:
    docs = render({**EVERYTHING, "gateway": {"service": {"type": "LoadBalancer"}}})
    public = [s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-gateway")]
    admin = [s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-admin")]
    assert len(public) == 1
    assert len(admin) == 1
    assert [p["name"] for p in public[0]["spec"]["ports"]] == ["http"]
    assert [p["name"] for p in admin[0]["spec"]["ports"]] == ["admin"]
    assert admin[0]["spec"]["type"] == "ClusterIP"

    (rule,) = of_kind(docs, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "TidegateBacklogNotDraining",
        "TidegateThrottleActive",
        "TidegateNoScalerLeader",
        "TidegateDeadLettersRising",
    }
    dashboard_map = next(
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    )
    dashboard = json.loads(dashboard_map["data"]["tidegate.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "tidegate.json").read_text())
    exprs = list(alerts.values()) + [
        t["expr"] for panel in dashboard["panels"] for t in panel["targets"]
    ]
    used = {name for expr in exprs for name in re.findall(r"tidegate_[a-z_]+", expr)}
    assert used
    assert used <= known_metrics(), used - known_metrics()
