"""The chart's alerts under ``promtool test rules`` (Debian's prometheus
package): each fires on the series that should raise it, with the labels an
operator routes on, and stays quiet on those that should not. The rules are
taken from the rendered PrometheusRule, so what is tested is what installs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.packaging.chart import of_kind, render

PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not on PATH (Debian: apt-get install prometheus)"
)

WAIT_S = 300
"""metrics.prometheusRule.oldestWaitingSeconds (the chart's default)."""


def rules(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    docs = render({"metrics": {"prometheusRule": {"enabled": True}}, **(values or {})})
    (rule,) = of_kind(docs, "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def expected(rule: dict[str, Any], **labels: str) -> dict[str, Any]:
    """An alert as promtool reports it: the rule's labels and the series',
    the annotations with ``$labels`` filled in."""
    annotations = {}
    for key, text in rule["annotations"].items():
        for name, value in labels.items():
            text = text.replace(f"{{{{ $labels.{name} }}}}", value)
        annotations[key] = text
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}


def run_promtool(tmp_path: Path, alerts: dict[str, dict[str, Any]], tests: list[Any]) -> None:
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "tidegate", "rules": list(alerts.values())}]})
    )
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_backlog_not_draining_alerts_per_namespace_and_route(tmp_path: Path) -> None:
    alerts = rules()
    rule = alerts["TidegateBacklogNotDraining"]
    age = "tidegate_scaler_oldest_waiting_age_seconds"
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    # Two scaler replicas report the same route: one alert.
                    {
                        "series": f'{age}{{namespace="shop",route="orders",pod="a"}}',
                        "values": f"{WAIT_S + 100}x20",
                    },
                    {
                        "series": f'{age}{{namespace="shop",route="orders",pod="b"}}',
                        "values": f"{WAIT_S + 100}x20",
                    },
                    # The same route name in another release's namespace: its own alert.
                    {
                        "series": f'{age}{{namespace="billing",route="orders",pod="c"}}',
                        "values": f"{WAIT_S + 100}x20",
                    },
                    {
                        "series": f'{age}{{namespace="shop",route="reports",pod="a"}}',
                        "values": f"{WAIT_S - 100}x20",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": rule["alert"], "exp_alerts": []},
                    {
                        "eval_time": "11m",
                        "alertname": rule["alert"],
                        "exp_alerts": [
                            expected(rule, namespace="billing", route="orders"),
                            expected(rule, namespace="shop", route="orders"),
                        ],
                    },
                ],
            }
        ],
    )


def test_a_throttle_alerts_after_five_minutes(tmp_path: Path) -> None:
    alerts = rules()
    rule = alerts["TidegateThrottleActive"]
    rate = "tidegate_scaler_throttle_rate"
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'{rate}{{namespace="shop",route="orders"}}', "values": "12.5x10"},
                    {"series": f'{rate}{{namespace="shop",route="reports"}}', "values": "0x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": rule["alert"], "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": rule["alert"],
                        "exp_alerts": [expected(rule, namespace="shop", route="orders")],
                    },
                ],
            }
        ],
    )


def test_no_leader_counts_this_release_only(tmp_path: Path) -> None:
    """Another release's leader (another namespace, or another Service in
    this one) does not silence this release's alert; no scaler scraped at all
    alerts too."""
    alerts = rules()
    rule = alerts["TidegateNoScalerLeader"]
    mine = 'tidegate_scaler_leader{namespace="shop",job="shop-tidegate-scaler",pod="%s"}'
    other_ns = 'tidegate_scaler_leader{namespace="billing",job="billing-tidegate-scaler",pod="x"}'
    other_job = 'tidegate_scaler_leader{namespace="shop",job="eu-tidegate-scaler",pod="y"}'
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": mine % "a", "values": "0x10"},
                    {"series": mine % "b", "values": "0x10"},
                    {"series": other_ns, "values": "1x10"},
                    {"series": other_job, "values": "1x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": rule["alert"], "exp_alerts": []},
                    {"eval_time": "3m", "alertname": rule["alert"], "exp_alerts": [expected(rule)]},
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": mine % "a", "values": "0x10"},
                    {"series": mine % "b", "values": "1x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": rule["alert"], "exp_alerts": []}
                ],
            },
            {
                "interval": "1m",
                "input_series": [{"series": other_ns, "values": "1x10"}],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": rule["alert"], "exp_alerts": [expected(rule)]}
                ],
            },
        ],
    )


def test_the_first_dead_letter_of_a_new_pod_alerts(tmp_path: Path) -> None:
    """A worker's counter exists at 0 from its start (``start_at_zero``), so
    its first dead letter is an increase; a flat counter is quiet."""
    alerts = rules()
    rule = alerts["TidegateDeadLettersRising"]
    dead = "tidegate_worker_dead_letters_total"
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'{dead}{{namespace="shop",route="orders",pod="new"}}',
                        "values": "0 0 0 1 1 1",
                    },
                    {
                        "series": f'{dead}{{namespace="shop",route="reports",pod="w"}}',
                        "values": "3x5",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": rule["alert"], "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": rule["alert"],
                        "exp_alerts": [expected(rule, namespace="shop", route="orders")],
                    },
                ],
            }
        ],
    )


def test_unheld_shards_alert_this_release_only(tmp_path: Path) -> None:
    """With scaler.shards 4: three held between two replicas is a shard
    without a leader; all four held is quiet; another release's do not count."""
    alerts = rules({"scaler": {"config": {"shards": 4}}})
    rule = alerts["TidegateScalerShardsUnheld"]
    mine = 'tidegate_scaler_shards_held{namespace="shop",job="shop-tidegate-scaler",pod="%s"}'
    other = 'tidegate_scaler_shards_held{namespace="billing",job="billing-tidegate-scaler",pod="x"}'
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": mine % "a", "values": "2x10"},
                    {"series": mine % "b", "values": "2 2 2 1 1 1 1 1 1 1"},
                    {"series": other, "values": "4x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": rule["alert"], "exp_alerts": []},
                    {"eval_time": "4m", "alertname": rule["alert"], "exp_alerts": []},
                    {"eval_time": "6m", "alertname": rule["alert"], "exp_alerts": [expected(rule)]},
                ],
            },
        ],
    )


def test_callbacks_given_up_alert_per_route(tmp_path: Path) -> None:
    alerts = rules()
    rule = alerts["TidegateCallbacksFailing"]
    series = 'tidegate_worker_callbacks_total{namespace="shop",route="%s",outcome="%s",pod="w"}'
    run_promtool(
        tmp_path,
        alerts,
        [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": series % ("orders", "failed"),
                        "values": "0 0 0 1 1 1",
                    },
                    {
                        "series": series % ("orders", "retried"),
                        "values": "0 5 9 14 20 30",
                    },
                    {
                        "series": series % ("reports", "delivered"),
                        "values": "0 10 20 30 40 50",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": rule["alert"], "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": rule["alert"],
                        "exp_alerts": [expected(rule, namespace="shop", route="orders")],
                    },
                ],
            }
        ],
    )


def test_every_alert_is_tested_and_no_leader_only_with_a_scaler() -> None:
    tested = {
        "TidegateBacklogNotDraining",
        "TidegateThrottleActive",
        "TidegateNoScalerLeader",
        "TidegateDeadLettersRising",
        "TidegateCallbacksFailing",
    }
    assert set(rules()) == tested
    assert set(rules({"scaler": {"enabled": False}})) == tested - {"TidegateNoScalerLeader"}
    sharded = rules({"scaler": {"config": {"shards": 4}}})
    assert set(sharded) == tested | {"TidegateScalerShardsUnheld"}


def test_alerts_an_operator_shapes(tmp_path: Path) -> None:
    """Built-in alerts can be left out and given another severity or ``for``;
    rules of one's own join the group; every alert links its runbook."""
    own = {
        "alert": "ShopOrdersSlow",
        "expr": "max(tidegate_scaler_oldest_waiting_age_seconds{route='orders'}) > 60",
        "labels": {"severity": "page"},
    }
    shaped = rules(
        {
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "disabled": ["TidegateThrottleActive"],
                    "alerts": {"TidegateDeadLettersRising": {"severity": "critical", "for": "5m"}},
                    "additionalRules": [own],
                    "runbookBaseUrl": "https://wiki.example.com/tidegate",
                }
            }
        }
    )
    assert "TidegateThrottleActive" not in shaped
    dead = shaped["TidegateDeadLettersRising"]
    assert (dead["labels"]["severity"], dead["for"]) == ("critical", "5m")
    assert shaped["ShopOrdersSlow"] == own
    backlog = shaped["TidegateBacklogNotDraining"]
    assert backlog["annotations"]["runbook_url"] == (
        "https://wiki.example.com/tidegate#tidegatebacklognotdraining"
    )
    run_promtool(tmp_path, shaped, [])  # the whole group still loads in Prometheus


def test_every_runbook_link_lands_on_a_heading_of_the_operations_guide() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    anchors = {
        line.lstrip("#").strip().lower() for line in guide.splitlines() if line.startswith("#")
    }
    everything = rules({"scaler": {"config": {"shards": 2}}})
    assert len(everything) == 6
    for name, rule in everything.items():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith("docs/operations.md#" + name.lower())
        assert name.lower() in anchors, name


@pytest.mark.parametrize(
    "bad",
    [
        {"disabled": ["NoSuchAlert"]},
        {"alerts": {"NoSuchAlert": {"severity": "page"}}},
        {"alerts": {"TidegateThrottleActive": {"for": "soon"}}},
        {"alerts": {"TidegateThrottleActive": {"labels": {}}}},
    ],
)
def test_the_schema_refuses_alerts_that_do_not_exist(bad: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"NoSuchAlert|prometheusRule|must be one of"):
        render({"metrics": {"prometheusRule": {"enabled": True, **bad}}})
