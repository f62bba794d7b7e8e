"""What operators customise without forking the chart: every value renders
where it should, stays valid Kubernetes, and the schema refuses malformed ones.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gateway.drain import termination_grace_s
from tests.integration.packaging.chart import (
    CHART,
    KUBERNETES,
    OPERATOR_KINDS,
    component,
    config_map,
    of_kind,
    render,
)
from tidegate.settings import parse_settings

DIGEST = "sha256:" + "ab" * 32


def part_values(part: str) -> dict[str, Any]:
    """Every per-part value set, each to something recognisable as ``part``'s."""
    return {
        "extraEnv": [{"name": "EXTRA", "value": part}],
        "extraVolumes": [{"name": "certs", "secret": {"secretName": f"{part}-certs"}}],
        "extraVolumeMounts": [{"name": "certs", "mountPath": "/etc/certs", "readOnly": True}],
        "podLabels": {"team": f"{part}-team"},
        "podAnnotations": {"example.com/part": part},
        "priorityClassName": f"{part}-critical",
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": part}},
            }
        ],
        "podSecurityContext": {"fsGroup": 20000},
        "securityContext": {"runAsUser": 20000, "runAsGroup": 20000},
        "nodeSelector": {"pool": part},
        "tolerations": [{"key": "dedicated", "value": part, "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": [part]}]}
                    ]
                }
            }
        },
        "livenessProbe": {"periodSeconds": 17, "timeoutSeconds": 3, "failureThreshold": 5},
        "readinessProbe": {"periodSeconds": 7, "timeoutSeconds": 2, "failureThreshold": 4},
        "startupProbe": {"periodSeconds": 3, "timeoutSeconds": 2, "failureThreshold": 60},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "deploymentAnnotations": {"example.com/owner": f"{part}-team"},
        "extraArgs": ["--log-level", "DEBUG"],
        **pod_runtime(part),
    }


def pod_runtime(part: str) -> dict[str, Any]:
    """The pod-level values every part takes (worker pods too)."""
    return {
        "runtimeClassName": f"{part}-sandboxed",
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["10.0.0.10"], "searches": [f"{part}.svc.cluster.local"]},
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": [f"{part}.internal"]}],
        "enableServiceLinks": True,
        "hostUsers": False,
    }


OPERATOR: dict[str, Any] = {
    "image": {"registry": "mirror.example.com/", "digest": DIGEST, "tag": "ignored"},
    "commonLabels": {"cost-center": "platform"},
    "gateway": part_values("gateway"),
    "scaler": part_values("scaler"),
    "extraObjects": [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "{{ .Release.Name }}-extra"},
            "data": {"namespace": "{{ .Release.Namespace }}"},
        },
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}-robot\n",
    ],
    "networkPolicy": {
        "enabled": True,
        "ingress": {
            "public": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}],
            "admin": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        },
        "egress": {
            "redis": {"ports": [6380], "to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]},
            "apiServer": {"ports": [443], "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]},
            "upstreams": {"ports": [8000], "to": [{"podSelector": {"matchLabels": {"app": "x"}}}]},
            "extra": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 4317}]}],
        },
    },
}


def test_every_customisation_is_valid_kubernetes_and_lints_clean() -> None:
    docs = render(OPERATOR)
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    report = helm.lint(CHART, OPERATOR, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("part", ["gateway", "scaler"])
def test_each_part_takes_its_own_values(part: str) -> None:
    docs = render(OPERATOR)
    deployment = component(docs, "Deployment", part)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    given = part_values(part)

    assert container["image"] == f"mirror.example.com/ghcr.io/tidegate/tidegate@{DIGEST}"
    assert container["env"][-1] == given["extraEnv"][0]
    assert {e["name"] for e in container["env"]} >= {"TIDEGATE_REDIS_URL", "EXTRA"}
    assert given["extraVolumes"][0] in pod["volumes"]
    assert {v["name"] for v in pod["volumes"]} >= {"config", "tmp", "certs"}
    assert given["extraVolumeMounts"][0] in container["volumeMounts"]
    labels = template["metadata"]["labels"]
    assert labels["team"] == f"{part}-team"
    assert labels["cost-center"] == "platform"
    assert labels["app.kubernetes.io/component"] == part
    assert template["metadata"]["annotations"]["example.com/part"] == part
    assert "checksum/config" in template["metadata"]["annotations"]
    for key in (
        "priorityClassName",
        "topologySpreadConstraints",
        "nodeSelector",
        *pod_runtime(part),
    ):
        assert pod[key] == given[key], key
    assert pod["tolerations"] == given["tolerations"]
    assert pod["affinity"] == given["affinity"]
    assert deployment["spec"]["strategy"] == given["strategy"]
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert deployment["metadata"]["annotations"] == given["deploymentAnnotations"]
    assert container["args"] == [part, "-c", "/etc/tidegate/tidegate.yaml", "--log-level", "DEBUG"]
    for probe, timing in (("livenessProbe", 17), ("readinessProbe", 7), ("startupProbe", 3)):
        assert container[probe]["periodSeconds"] == timing
        assert container[probe]["httpGet"]["port"] == "admin"
    # Overrides replace the keys they name; every other secure default stays.
    assert container["securityContext"]["runAsUser"] == 20000
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["fsGroup"] == 20000
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_common_labels_are_on_everything_and_extra_objects_are_templates() -> None:
    docs = render(OPERATOR)
    for doc in docs:
        if doc["metadata"]["name"].startswith("shop-extra") or doc["kind"] == "ServiceAccount":
            continue
        assert doc["metadata"]["labels"]["cost-center"] == "platform", doc["kind"]
    extra = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "shop-extra")
    assert extra["data"] == {"namespace": "shop"}
    robots = [d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "shop-robot"]
    assert len(robots) == 1


def test_a_tag_pins_the_image_when_no_digest_does() -> None:
    (container,) = component(render(), "Deployment", "gateway")["spec"]["template"]["spec"][
        "containers"
    ]
    assert (
        container["image"]
        == "ghcr.io/tidegate/tidegate:"
        + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    )
    (container,) = component(render({"image": {"tag": "1.2.3"}}), "Deployment", "gateway")["spec"][
        "template"
    ]["spec"]["containers"]
    assert container["image"] == "ghcr.io/tidegate/tidegate:1.2.3"


@pytest.mark.parametrize(
    ("gateway", "budget"),
    [
        ({"replicas": 1}, None),
        ({"replicas": 2}, {"maxUnavailable": 1}),
        ({"replicas": 3, "pdb": {"maxUnavailable": "50%"}}, {"maxUnavailable": "50%"}),
        ({"replicas": 3, "pdb": {"maxUnavailable": None, "minAvailable": 2}}, {"minAvailable": 2}),
        ({"replicas": 3, "pdb": {"enabled": False}}, None),
    ],
)
def test_the_gateway_budget_never_blocks_every_drain(
    gateway: dict[str, Any], budget: dict[str, Any] | None
) -> None:
    pdbs = [
        d
        for d in of_kind(render({"gateway": gateway}), "PodDisruptionBudget")
        if d["metadata"]["name"].endswith("-gateway")
    ]
    if budget is None:
        assert pdbs == []
        return
    (pdb,) = pdbs
    spec = {k: v for k, v in pdb["spec"].items() if k != "selector"}
    assert spec == budget


def test_the_crd_is_a_template_upgraded_with_the_release_and_kept() -> None:
    from tests.integration.packaging.test_chart_crd import CRD

    (crd,) = of_kind(render(), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "shop"
    shipped = yaml.safe_load(CRD.read_text())
    assert {k: v for k, v in crd.items() if k != "metadata"} == {
        k: v for k, v in shipped.items() if k != "metadata"
    }
    (crd,) = of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]
    assert of_kind(render({"crds": {"install": False}}), "CustomResourceDefinition") == []
    assert not (CHART / "crds").exists()  # Helm would install that copy too, and never upgrade it


@pytest.mark.parametrize("lease", [None, "orders-scaler-lock"])
def test_the_lease_rule_names_the_lease(lease: str | None) -> None:
    """The rule follows the config's Lease name, the chart's or one set in
    scaler.config; the keys the manifests depend on stay the chart's."""
    values = (
        {"scaler": {"config": {"lease_name": lease, "admin_listen": "0.0.0.0:1"}}}
        if lease
        else None
    )
    docs = render(values)
    scaler = yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"])["scaler"]
    configured = scaler["lease_name"]
    assert configured == (lease or "shop-tidegate-scaler")
    assert scaler["admin_listen"] == "0.0.0.0:9091"  # the port the manifests name
    rules = [
        rule
        for role in of_kind(docs, "Role")
        for rule in role["rules"]
        if "leases" in rule["resources"]
    ]
    named = [r for r in rules if r.get("resourceNames")]
    unnamed = [r for r in rules if not r.get("resourceNames")]
    assert [(r["resourceNames"], sorted(r["verbs"])) for r in named] == [
        ([configured], ["get", "update"])
    ]
    assert [r["verbs"] for r in unnamed] == [["create"]]


def test_with_shards_the_lease_rule_names_a_lease_per_shard() -> None:
    docs = render({"scaler": {"config": {"shards": 3}}})
    scaler = yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"])["scaler"]
    assert scaler["shards"] == 3
    (named,) = [
        rule
        for role in of_kind(docs, "Role")
        for rule in role["rules"]
        if "leases" in rule["resources"] and rule.get("resourceNames")
    ]
    base = scaler["lease_name"]
    assert named["resourceNames"] == [f"{base}-0", f"{base}-1", f"{base}-2"]


def test_network_policies_let_in_and_out_only_what_is_named() -> None:
    docs = render(OPERATOR)
    policies = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p
        for p in of_kind(docs, "NetworkPolicy")
    }
    assert set(policies) == {"gateway", "scaler"}
    given = OPERATOR["networkPolicy"]
    gateway, scaler = policies["gateway"]["spec"], policies["scaler"]["spec"]
    for spec, part in ((gateway, "gateway"), (scaler, "scaler")):
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == part
        admin = [r for r in spec["ingress"] if r["ports"] == [{"port": "admin", "protocol": "TCP"}]]
        assert [r["from"] for r in admin] == [given["ingress"]["admin"]]
        egress = spec["egress"]
        assert egress[0]["ports"] == [
            {"port": 53, "protocol": "UDP"},
            {"port": 53, "protocol": "TCP"},
        ]
        assert {
            "ports": [{"port": 6380, "protocol": "TCP"}],
            "to": given["egress"]["redis"]["to"],
        } in egress
        assert given["egress"]["extra"][0] in egress
    (public,) = [r for r in gateway["ingress"] if r["ports"][0]["port"] == "http"]
    assert public["from"] == given["ingress"]["public"]
    upstream = {
        "ports": [{"port": 8000, "protocol": "TCP"}],
        "to": given["egress"]["upstreams"]["to"],
    }
    api = {"ports": [{"port": 443, "protocol": "TCP"}], "to": given["egress"]["apiServer"]["to"]}
    assert upstream in gateway["egress"]
    assert upstream not in scaler["egress"]
    assert api in scaler["egress"]
    assert api not in gateway["egress"]
    assert len(scaler["ingress"]) == 1  # the scaler has no public port


def test_network_policies_default_to_the_namespace_for_admin_and_are_off_by_default() -> None:
    assert of_kind(render(), "NetworkPolicy") == []
    docs = render({"networkPolicy": {"enabled": True}, "scaler": {"enabled": False}})
    (policy,) = of_kind(docs, "NetworkPolicy")
    spec = policy["spec"]
    (public,) = [r for r in spec["ingress"] if r["ports"][0]["port"] == "http"]
    assert "from" not in public  # anyone may reach the public port
    (admin,) = [r for r in spec["ingress"] if r["ports"][0]["port"] == "admin"]
    assert admin["from"] == [{"podSelector": {}}]
    ports = [p["port"] for rule in spec["egress"] for p in rule["ports"]]
    assert ports == [53, 53, 6379, 26379]  # no upstream ports unless named


@pytest.mark.parametrize(
    "values",
    [
        {"image": {"digest": "latest"}},
        {"commonLabels": {"n": 1}},
        {"gateway": {"extraEnv": [{"value": "no name"}]}},
        {"scaler": {"extraVolumeMounts": [{"name": "x"}]}},
        {"gateway": {"livenessProbe": {"periodSeconds": 0}}},
        {"gateway": {"readinessProbe": {"period": 5}}},
        {"networkPolicy": {"egress": {"redis": {"ports": ["redis"]}}}},
        {"networkPolicy": {"egress": {"redis": {"ports": [70000]}}}},
        {"crds": {"install": "yes"}},
        {"scaler": {"podLabels": {"team": 7}}},
    ],
)
def test_the_schema_refuses_malformed_customisations(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(values)


@pytest.mark.parametrize(
    ("drain_s", "grace_s"), [(None, None), (0, 0), (5, 20), (15, 45), (2, 120)]
)
def test_the_gateway_pods_grace_period_covers_the_gateways_own_drain(
    drain_s: int | None, grace_s: int | None
) -> None:
    """terminationGracePeriodSeconds is what the gateway's settings need
    (``gateway.drain.termination_grace_s``), read back from the config the
    chart renders: the kubelet never SIGKILLs a gateway that is draining."""
    values: dict[str, Any] = {"gateway": {}}
    if drain_s is not None:
        values["gateway"] = {"drainDelaySeconds": drain_s, "shutdownGraceSeconds": grace_s}
    docs = render(values)
    settings = parse_settings(yaml.safe_load(config_map(docs)["data"]["tidegate.yaml"]), env={})
    if drain_s is not None:
        assert (settings.gateway.drain_delay_s, settings.gateway.shutdown_grace_s) == (
            drain_s,
            grace_s,
        )
    pod = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == termination_grace_s(settings.gateway)
    (container,) = pod["containers"]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert "lifecycle" not in container


def test_the_gateway_takes_lifecycle_hooks() -> None:
    hook = {"preStop": {"exec": {"command": ["sleep", "3"]}}}
    docs = render({"gateway": {"lifecycle": hook}})
    (container,) = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["lifecycle"] == hook
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(("level", "fmt"), [(None, None), ("DEBUG", "json"), ("WARNING", "text")])
def test_logging_values_reach_every_part(level: str | None, fmt: str | None) -> None:
    values: dict[str, Any] = {} if level is None else {"logging": {"level": level, "format": fmt}}
    docs = render(values)
    for part in ("gateway", "scaler"):
        (container,) = component(docs, "Deployment", part)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TIDEGATE_LOG_LEVEL"] == (level or "INFO")
        assert env["TIDEGATE_LOG_FORMAT"] == (fmt or "text")
        assert container["args"][:3] == [part, "-c", "/etc/tidegate/tidegate.yaml"]


@pytest.mark.parametrize(
    "bad",
    [
        {"logging": {"level": "LOUD"}},
        {"logging": {"format": "xml"}},
        {"gateway": {"extraArgs": "--debug"}},
        {"scaler": {"revisionHistoryLimit": -1}},
    ],
)
def test_the_schema_refuses_bad_logging_and_deployment_values(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(bad)


def test_the_public_service_and_ingress_take_what_a_cloud_needs() -> None:
    values: dict[str, Any] = {
        "gateway": {
            "service": {
                "type": "LoadBalancer",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                "labels": {"exposure": "public"},
                "loadBalancerClass": "service.k8s.aws/nlb",
                "loadBalancerSourceRanges": ["203.0.113.0/24"],
                "externalTrafficPolicy": "Local",
            },
            "ingress": {
                "enabled": True,
                "hosts": ["api.example.com"],
                "paths": [
                    {"path": "/orders", "pathType": "Prefix"},
                    {"path": "/_tidegate", "pathType": "Prefix"},
                ],
            },
        }
    }
    docs = render(values)
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    public = services["shop-tidegate-gateway"]
    assert public["metadata"]["annotations"] == values["gateway"]["service"]["annotations"]
    assert public["metadata"]["labels"]["exposure"] == "public"
    assert public["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert public["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert public["spec"]["externalTrafficPolicy"] == "Local"
    admin = services["shop-tidegate-admin"]  # the admin Service takes none of it
    assert admin["spec"]["type"] == "ClusterIP"
    assert "annotations" not in admin["metadata"]
    (ingress,) = of_kind(docs, "Ingress")
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [
        ("/orders", "Prefix"),
        ("/_tidegate", "Prefix"),
    ]
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    # ClusterIP: the load balancer fields are left out, whatever is set
    cluster_ip = {**values["gateway"]["service"], "type": "ClusterIP"}
    docs = render({"gateway": {"service": cluster_ip}})
    spec = next(d for d in of_kind(docs, "Service") if d["metadata"]["name"].endswith("-gateway"))[
        "spec"
    ]
    assert not {"loadBalancerClass", "loadBalancerSourceRanges", "externalTrafficPolicy"} & set(
        spec
    )


def test_scrapes_take_timeout_and_relabelings() -> None:
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}]
    scrape = {
        "enabled": True,
        "scrapeTimeout": "10s",
        "relabelings": relabel,
        "metricRelabelings": drop,
    }
    docs = render({"metrics": {"serviceMonitor": scrape, "podMonitor": scrape}})
    (service_monitor,) = of_kind(docs, "ServiceMonitor")
    (pod_monitor,) = of_kind(docs, "PodMonitor")
    for endpoint in (
        service_monitor["spec"]["endpoints"][0],
        pod_monitor["spec"]["podMetricsEndpoints"][0],
    ):
        assert endpoint["scrapeTimeout"] == "10s"
        assert endpoint["relabelings"] == relabel
        assert endpoint["metricRelabelings"] == drop


@pytest.mark.parametrize(
    "bad",
    [
        {"gateway": {"service": {"externalTrafficPolicy": "Everywhere"}}},
        {"gateway": {"ingress": {"paths": [{"path": "orders", "pathType": "Prefix"}]}}},
        {"gateway": {"ingress": {"paths": [{"path": "/", "pathType": "Regex"}]}}},
        {"gateway": {"service": {"loadBalancerSourceRanges": "10.0.0.0/8"}}},
    ],
)
def test_the_schema_refuses_malformed_service_and_ingress_values(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(bad)


@pytest.mark.parametrize(
    ("scaler", "budget"),
    [
        ({}, 1),
        ({"replicas": 1}, None),
        ({"pdb": {"enabled": False}}, None),
        ({"pdb": {"maxUnavailable": 2}, "replicas": 3}, 2),
    ],
)
def test_the_scaler_has_a_budget_of_its_own(scaler: dict[str, Any], budget: int | None) -> None:
    pdbs = [
        d
        for d in of_kind(render({"scaler": scaler}), "PodDisruptionBudget")
        if d["metadata"]["name"].endswith("-scaler")
    ]
    assert [p["spec"]["maxUnavailable"] for p in pdbs] == ([] if budget is None else [budget])


def test_the_gateway_may_scale_itself_on_cpu() -> None:
    docs = render(
        {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12}}}
    )
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "shop-tidegate-gateway"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    assert "replicas" not in component(docs, "Deployment", "gateway")["spec"]  # the HPA's
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert of_kind(render(), "HorizontalPodAutoscaler") == []


@pytest.mark.parametrize("part", ["gateway", "scaler"])
def test_extra_and_init_containers_and_probes_that_can_be_turned_off(part: str) -> None:
    sidecar = {"name": "log-shipper", "image": "example/shipper:1"}
    init = {"name": "wait", "image": "busybox:1", "command": ["true"]}
    values = {
        part: {
            "extraContainers": [sidecar],
            "initContainers": [init],
            "livenessProbe": {"enabled": False},
            "startupProbe": {"enabled": False},
        }
    }
    docs = render(values)
    pod = component(docs, "Deployment", part)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == [part, "log-shipper"]
    assert pod["initContainers"] == [init]
    main = pod["containers"][0]
    assert "livenessProbe" not in main
    assert "startupProbe" not in main
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "enabled" not in main["readinessProbe"]
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_service_accounts_and_rbac_as_an_operator_brings_them() -> None:
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tidegate"}
    docs = render(
        {
            "rbac": {"create": False},
            "scaler": {"serviceAccount": {"create": False, "name": "platform-scaler"}},
            "gateway": {
                "serviceAccount": {"create": True, "annotations": irsa},
            },
        }
    )
    assert [d for d in docs if d["kind"] in ("Role", "RoleBinding")] == []
    accounts = {d["metadata"]["name"]: d for d in of_kind(docs, "ServiceAccount")}
    assert set(accounts) == {"shop-tidegate-gateway"}  # the scaler's is the operator's
    assert accounts["shop-tidegate-gateway"]["metadata"]["annotations"] == irsa
    gateway_pod = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert gateway_pod["serviceAccountName"] == "shop-tidegate-gateway"
    assert gateway_pod["automountServiceAccountToken"] is False
    scaler_pod = component(docs, "Deployment", "scaler")["spec"]["template"]["spec"]
    assert scaler_pod["serviceAccountName"] == "platform-scaler"
    assert scaler_pod["automountServiceAccountToken"] is True


def test_by_default_the_scaler_has_its_account_and_roles_and_the_gateway_none() -> None:
    docs = render()
    bindings = of_kind(docs, "RoleBinding")
    assert bindings
    assert {s["name"] for b in bindings for s in b["subjects"]} == {"shop-tidegate-scaler"}
    gateway_pod = component(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert "serviceAccountName" not in gateway_pod
    assert gateway_pod["automountServiceAccountToken"] is False
    named = render({"scaler": {"serviceAccount": {"name": "tg-scaler"}}})
    (account,) = of_kind(named, "ServiceAccount")
    assert account["metadata"]["name"] == "tg-scaler"
    assert {s["name"] for b in of_kind(named, "RoleBinding") for s in b["subjects"]} == {
        "tg-scaler"
    }


def test_the_redis_url_may_be_mounted_as_a_file() -> None:
    docs = render({"redis": {"urlAsFile": True, "existingSecret": "shop-redis"}})
    for part in ("gateway", "scaler"):
        pod = component(docs, "Deployment", part)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert "TIDEGATE_REDIS_URL" not in env
        assert env["TIDEGATE_REDIS_URL_FILE"]["value"] == "/etc/tidegate-redis/url"
        volume = next(v for v in pod["volumes"] if v["name"] == "redis-url")
        assert volume["secret"] == {
            "secretName": "shop-redis",
            "items": [{"key": "redis-url", "path": "url"}],
        }
        mount = next(m for m in container["volumeMounts"] if m["name"] == "redis-url")
        assert (mount["mountPath"], mount["readOnly"]) == ("/etc/tidegate-redis", True)
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_helm_test_asks_the_gateway_and_the_scaler() -> None:
    docs = render()
    (pod,) = [d for d in of_kind(docs, "Pod") if d["metadata"]["name"] == "shop-tidegate-test"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    for name, port, path in (
        ("shop-tidegate-admin", 9090, "/readyz"),
        ("shop-tidegate-gateway", 80, "/_tidegate/openapi.json"),
        ("shop-tidegate-scaler", 9091, "/readyz"),
    ):
        assert f"http://{name}:{port}{path}" in script
        assert port in [p["port"] for p in services[name]["spec"]["ports"]]
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)
    without = render({"scaler": {"enabled": False}})
    (alone,) = [d for d in of_kind(without, "Pod") if d["metadata"]["name"] == "shop-tidegate-test"]
    assert "shop-tidegate-scaler" not in alone["spec"]["containers"][0]["args"][0]
    assert [d for d in of_kind(render({"tests": {"enabled": False}}), "Pod")] == []


def test_a_gateway_api_httproute_instead_of_an_ingress() -> None:
    parent = {"name": "public", "namespace": "gateways", "sectionName": "https"}
    docs = render(
        {
            "gateway": {
                "httpRoute": {
                    "enabled": True,
                    "parentRefs": [parent],
                    "hostnames": ["api.example.com"],
                    "paths": [{"type": "PathPrefix", "value": "/orders"}],
                }
            }
        }
    )
    (route,) = of_kind(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "shop"
    spec = route["spec"]
    assert spec["parentRefs"] == [parent]
    assert spec["hostnames"] == ["api.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/orders"}}]
    service = next(
        d for d in of_kind(docs, "Service") if d["metadata"]["name"] == "shop-tidegate-gateway"
    )
    assert rule["backendRefs"] == [
        {"name": "shop-tidegate-gateway", "port": service["spec"]["ports"][0]["port"]}
    ]
    assert of_kind(render(), "HTTPRoute") == []


@pytest.mark.parametrize(
    "bad",
    [
        {"enabled": True},  # attached to no Gateway
        {"enabled": True, "parentRefs": [{"name": "p"}], "paths": [{"type": "Glob", "value": "/"}]},
        {"enabled": True, "parentRefs": [{"name": "p"}], "paths": []},
        {"enabled": True, "parentRefs": [{}]},
    ],
)
def test_the_schema_refuses_an_httproute_that_cannot_work(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render({"gateway": {"httpRoute": bad}})


def test_pods_leave_dns_and_runtime_to_the_cluster_and_take_no_service_links() -> None:
    docs = render({"workers": [{"name": "w", "route": "orders", "app": "m:f"}]})
    pods = [d["spec"]["template"]["spec"] for d in of_kind(docs, "Deployment")]
    assert len(pods) == 3  # gateway, scaler, worker
    for pod in pods:
        assert pod["enableServiceLinks"] is False
        for key in ("runtimeClassName", "dnsPolicy", "dnsConfig", "hostAliases", "hostUsers"):
            assert key not in pod, key


def test_monitors_may_live_in_prometheus_namespace_and_services_be_dual_stack() -> None:
    values = {
        "metrics": {
            "serviceMonitor": {"enabled": True, "namespace": "monitoring"},
            "podMonitor": {"enabled": True, "namespace": "monitoring"},
            "prometheusRule": {"enabled": True, "namespace": "monitoring"},
        },
        "gateway": {
            "service": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6", "IPv4"]}
        },
    }
    docs = render(values)
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        (monitor,) = of_kind(docs, kind)
        assert monitor["metadata"]["namespace"] == "monitoring", kind
    (service_monitor,) = of_kind(docs, "ServiceMonitor")
    assert service_monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    assert {"shop-tidegate-gateway", "shop-tidegate-admin"} <= set(services)
    for name in ("shop-tidegate-gateway", "shop-tidegate-admin"):
        assert services[name]["spec"]["ipFamilyPolicy"] == "PreferDualStack"
        assert services[name]["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
        kubernetes_validate.validate(services[name], KUBERNETES, strict=True)
    defaults = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    (own,) = of_kind(defaults, "ServiceMonitor")
    assert own["metadata"]["namespace"] == "shop"


@pytest.mark.parametrize(
    "bad",
    [
        {"gateway": {"dnsPolicy": "Sometimes"}},
        {"scaler": {"hostAliases": [{"hostnames": ["x"]}]}},
        {"gateway": {"service": {"ipFamilyPolicy": "DualStack"}}},
        {"gateway": {"service": {"ipFamilies": ["IPv5"]}}},
        {"metrics": {"podMonitor": {"namespace": "Monitoring"}}},
    ],
)
def test_the_schema_refuses_malformed_pod_and_monitor_values(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(bad)
