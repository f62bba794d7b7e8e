"""The chart's worker Deployments (``workers``): a relay sidecar in front of
an unchanged service, or a handler, rendered from values so nobody copies a
sidecar by hand."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from tests.integration.packaging.chart import KUBERNETES, of_kind, render

ORDERS: dict[str, Any] = {
    "name": "orders",
    "route": "orders",
    "service": {"image": "example/orders:1.4", "port": 8000},
}
SENTINELS: dict[str, Any] = {
    "mode": "sentinel",
    "sentinels": ["s-0:26379"],
    "sentinelMaster": "main",
}
REPORTS: dict[str, Any] = {"name": "reports", "route": "reports", "app": "reports.handlers:run"}


def workers(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in of_kind(render(values), "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    }


def container(deployment: dict[str, Any], name: str = "tidegate-worker") -> dict[str, Any]:
    (found,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name
    ]
    picked: dict[str, Any] = found
    return picked


def arg(c: dict[str, Any], flag: str) -> str:
    args: list[str] = c["args"]
    return args[args.index(flag) + 1]


def test_no_workers_by_default() -> None:
    assert workers({}) == {}


@pytest.mark.parametrize(
    "values",
    [
        {"workers": [ORDERS]},
        {"workers": [ORDERS, REPORTS]},
        {
            "workers": [
                {**ORDERS, "replicas": 2, "concurrency": 8, "extraArgs": ["--log-level", "DEBUG"]}
            ]
        },
        {"workers": [ORDERS], "redis": {"urlAsFile": True}},
        {"workers": [ORDERS], "redis": SENTINELS},
        {"workers": [{**REPORTS, "image": {"repository": "example/reports", "tag": "2"}}]},
    ],
    ids=["relay", "relay+handler", "tuned", "url-file", "sentinel", "own-image"],
)
def test_every_worker_manifest_is_valid_kubernetes(values: dict[str, Any]) -> None:
    for doc in render(values):
        if doc["kind"] in ("Deployment",):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert len(workers(values)) == len(values["workers"])


def test_a_relay_worker_calls_its_service_in_the_pod_and_is_probed_over_http() -> None:
    deployment = workers({"workers": [ORDERS]})["shop-tidegate-worker-orders"]
    pod = deployment["spec"]["template"]["spec"]
    sidecar = container(deployment)
    assert sidecar["args"][:5] == [
        "worker",
        "-c",
        "/etc/tidegate/tidegate.yaml",
        "--route",
        "orders",
    ]
    assert arg(sidecar, "--upstream") == "http://127.0.0.1:8000"
    assert container(deployment, "service")["ports"][0]["containerPort"] == 8000
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert arg(sidecar, "--metrics-listen") == f"0.0.0.0:{ports['metrics']}"
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # jobs in flight get --grace-s; the pod's grace is longer, or the kubelet kills mid-drain
    assert float(arg(sidecar, "--grace-s")) + 3 <= pod["terminationGracePeriodSeconds"]
    assert pod["automountServiceAccountToken"] is False
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["tidegate.io/worker"] == "true"  # what metrics.podMonitor finds
    assert {"name": "config", "mountPath": "/etc/tidegate", "readOnly": True} in sidecar[
        "volumeMounts"
    ]


def test_the_scaler_owns_the_replicas_unless_a_number_is_given() -> None:
    assert "replicas" not in workers({"workers": [ORDERS]})["shop-tidegate-worker-orders"]["spec"]
    given = workers({"workers": [{**ORDERS, "replicas": 3}]})
    assert given["shop-tidegate-worker-orders"]["spec"]["replicas"] == 3


def test_a_handler_worker_runs_its_app_in_its_own_image() -> None:
    values = {"workers": [{**REPORTS, "image": {"repository": "example/reports", "tag": "2"}}]}
    deployment = workers(values)["shop-tidegate-worker-reports"]
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    assert only["image"] == "example/reports:2"
    assert arg(only, "--app") == "reports.handlers:run"
    assert "--upstream" not in only["args"]


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe"])
def test_a_probe_can_be_switched_off_per_worker(probe: str) -> None:
    values = {"workers": [{**ORDERS, probe: {"enabled": False}}]}
    sidecar = container(workers(values)["shop-tidegate-worker-orders"])
    assert probe not in sidecar
    other = {"startupProbe": "livenessProbe", "livenessProbe": "startupProbe"}[probe]
    assert other in sidecar


def test_defaults_are_shared_and_an_entry_overrides_them() -> None:
    values = {
        "workerDefaults": {"graceSeconds": 40, "resources": {"limits": {"memory": "256Mi"}}},
        "workers": [ORDERS, {**REPORTS, "graceSeconds": 10}],
    }
    found = workers(values)
    orders, reports = found["shop-tidegate-worker-orders"], found["shop-tidegate-worker-reports"]
    assert arg(container(orders), "--grace-s") == "40"
    assert orders["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 45
    assert arg(container(reports), "--grace-s") == "10"
    assert container(reports)["resources"] == {"limits": {"memory": "256Mi"}}


def test_the_redis_url_reaches_the_worker_as_the_other_parts_get_it() -> None:
    plain = container(workers({"workers": [ORDERS]})["shop-tidegate-worker-orders"])
    env = {e["name"]: e for e in plain["env"]}
    assert env["TIDEGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "shop-tidegate-redis"
    as_file = container(
        workers({"workers": [ORDERS], "redis": {"urlAsFile": True}})["shop-tidegate-worker-orders"]
    )
    names = [e["name"] for e in as_file["env"]]
    assert "TIDEGATE_REDIS_URL" not in names
    assert "TIDEGATE_REDIS_URL_FILE" in names


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "orders", "route": "orders"},  # neither a service nor an app
        {**ORDERS, "app": "x:y"},  # both
        {"route": "orders", "service": ORDERS["service"]},  # no name
        {**ORDERS, "name": "Orders_1"},  # not a DNS label
        {**ORDERS, "servce": {}},  # a typo
        {**ORDERS, "service": {"image": "example/orders:1.4"}},  # no port
        {**REPORTS, "app": "not a function"},
        {**ORDERS, "graceSeconds": 0},
    ],
)
def test_the_schema_refuses_a_worker_that_cannot_run(entry: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render({"workers": [entry]})


def test_a_worker_pod_takes_the_placement_and_runtime_values_of_the_other_parts() -> None:
    given = {
        "nodeSelector": {"pool": "workers"},
        "tolerations": [{"key": "dedicated", "value": "workers", "effect": "NoSchedule"}],
        "priorityClassName": "workers-critical",
        "runtimeClassName": "gvisor",
        "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["orders.internal"]}],
        "podLabels": {"team": "orders"},
        "podSecurityContext": {"fsGroup": 20000},
    }
    deployment = workers({"workers": [{**ORDERS, **given}]})["shop-tidegate-worker-orders"]
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    for key in ("nodeSelector", "tolerations", "priorityClassName", "runtimeClassName"):
        assert pod[key] == given[key], key
    assert pod["dnsConfig"] == given["dnsConfig"]
    assert pod["hostAliases"] == given["hostAliases"]
    assert pod["securityContext"]["fsGroup"] == 20000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "orders"
