"""The Helm chart rendered and linted by the real Helm engine, its manifests
validated against Kubernetes schemas: defaults, security, names, values.
"""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.integration.packaging.chart import (
    CHART,
    EVERYTHING,
    KUBERNETES,
    NON_DEFAULT,
    OPERATOR_KINDS,
    component,
    config_map,
    known_metrics,
    of_kind,
    render,
)
from tidegate.errors import ConfigError
from tidegate.settings import parse_settings


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
        "TidegateCallbacksFailing",
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


@pytest.mark.parametrize(
    ("redis", "mode"),
    [
        ({}, "standalone"),
        ({"mode": "cluster", "url": "redis://node-0.redis:6379/0"}, "cluster"),
        (
            {
                "mode": "sentinel",
                "sentinels": ["s-0.redis:26379", "s-1.redis:26379", "s-2.redis:26379"],
                "sentinelMaster": "mymaster",
            },
            "sentinel",
        ),
    ],
)
def test_the_redis_mode_reaches_every_part(redis: dict[str, Any], mode: str) -> None:
    """The mode and the sentinels travel as environment variables, which the
    settings read (a list as commas), for the gateway and the scaler alike."""
    docs = render({"redis": redis})
    raw = yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"])
    for part in ("gateway", "scaler"):
        container = component(docs, "Deployment", part)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in container["containers"][0]["env"]}
        assert env["TIDEGATE_REDIS_MODE"] == mode
        values = {k: v for k, v in env.items() if v is not None}
        settings = parse_settings(raw, env={**values, "TIDEGATE_REDIS_URL": "redis://r:6379/0"})
        assert settings.redis.mode == mode
        assert list(settings.redis.sentinels) == redis.get("sentinels", [])
        assert settings.redis.sentinel_master == redis.get("sentinelMaster", "")


def test_the_schema_refuses_a_sentinel_mode_without_sentinels() -> None:
    with pytest.raises(Exception, match=r"/redis/sentinels': minItems"):
        render({"redis": {"mode": "sentinel"}})
    with pytest.raises(Exception, match="/redis/mode"):
        render({"redis": {"mode": "replicated"}})


def test_the_version_is_written_once_and_every_copy_agrees() -> None:
    """tidegate/__init__.py holds it (pyproject reads it at build time); the
    chart's appVersion and the image tags in the docs must follow."""
    import tomllib

    import tidegate

    root = CHART.parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == tidegate.__version__
    install = root / "docs" / "install.md"
    assert re.findall(r"tidegate:(\d+\.\d+\.\d+)", install.read_text())
    for doc in (CHART / "README.md", install):  # every image tag an example names
        tags = re.findall(r"tidegate:(\d+\.\d+\.\d+)", doc.read_text())
        assert set(tags) <= {tidegate.__version__}, doc


def test_the_licence_file_is_the_declared_licence() -> None:
    import tomllib

    root = CHART.parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (root / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text


CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}


@pytest.mark.parametrize("values", [None, EVERYTHING], ids=["defaults", "everything"])
def test_every_namespaced_object_names_its_namespace(values: dict[str, Any] | None) -> None:
    """``helm template | kubectl apply`` and GitOps tools apply what is
    rendered as it is: an object without ``metadata.namespace`` lands in
    ``default``, whatever namespace the release was meant for."""
    docs = render(values)
    watched = set((values or {}).get("scaler", {}).get("namespaces", [])) | {"shop"}
    missing = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") not in watched
    ]
    assert missing == []
    assert any(d["kind"] == "Deployment" for d in docs)


def test_the_charts_route_schema_is_the_settings_own() -> None:
    """Generated from the settings classes: regenerate with
    ``python -m tidegate.settings.schema charts/tidegate/values.schema.json``."""
    from tidegate.settings.schema import with_routes

    shipped = json.loads((CHART / "values.schema.json").read_text())
    assert shipped == with_routes(shipped)


@pytest.mark.parametrize(
    ("route", "said"),
    [
        (
            {"name": "orders", "match": {"path_prefix": "/o"}, "max_body_bytez": 10},
            "max_body_bytez",
        ),
        ({"name": "orders", "match": {"path_prefix": "/o"}, "mode": "queue"}, "mode"),
        ({"name": "orders", "match": {"path_prefix": "/o"}, "wait_s": "ten"}, "wait_s"),
        ({"name": "orders", "match": {"path_prefix": "/o", "method": ["GET"]}}, "method"),
        ({"name": "orders"}, "match"),
        (
            {"name": "o", "match": {"path_prefix": "/o"}, "worker": {"max_attempt": 2}},
            "max_attempt",
        ),
        (
            {"name": "o", "match": {"path_prefix": "/o"}, "forwarding": {"strip": True}},
            "strip",
        ),
    ],
)
def test_the_schema_refuses_a_route_tidegate_would_refuse(route: dict[str, Any], said: str) -> None:
    with pytest.raises(helm.HelmError, match=said):
        render({"routes": [route]})
    with pytest.raises(ConfigError):
        parse_settings({"routes": [route]}, env={})
