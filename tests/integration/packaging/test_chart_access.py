"""What the chart grants and watches: the scaler's RBAC, and alerts and a
dashboard that use metrics which exist.
"""

from __future__ import annotations

from tests.integration.packaging.chart import (
    EVERYTHING,
    component,
    of_kind,
    render,
)


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
    # Read only (get, and list + watch for the informer): never a whole Deployment.
    assert by_resource["deployments"] == {"get", "list", "watch"}
    assert by_resource["deployments/scale"] <= {"get", "update", "patch"}
    assert by_resource["leases"] <= {"get", "create", "update"}
    assert by_resource["backlogscalers"] <= {"get", "list", "watch"}
    assert by_resource["backlogscalers/status"] <= {"get", "update", "patch"}
    assert by_resource["events"] <= {"create", "patch"}
    assert by_resource["pods"] == {"list", "patch"}  # pod-deletion-cost marks only
    assert set(by_resource) == {
        "deployments",
        "deployments/scale",
        "leases",
        "backlogscalers",
        "backlogscalers/status",
        "events",
        "pods",
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
