"""Bad input on the command line and in the environment: one clear line (or
one JSON object), never a traceback; every JSON log line parses, the fatal
one included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def tidegate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": "redis://127.0.0.1:1/0"},
                "routes": [{"name": "orders", "match": {"path_prefix": "/orders"}}],
            }
        )
    )
    return path


WORKER = ["worker", "--route", "orders", "--upstream", "http://127.0.0.1:1"]

BAD_OPTIONS = [
    ([*WORKER, "--metrics-listen", "nonsense"], "--metrics-listen: expected host:port"),
    ([*WORKER, "--metrics-listen", "0.0.0.0:99999"], "--metrics-listen: expected host:port"),
    ([*WORKER, "--concurrency", "0"], "--concurrency: '0': must be at least 1"),
    ([*WORKER, "--concurrency", "-1"], "--concurrency: '-1': must be at least 1"),
    ([*WORKER, "--concurrency", "many"], "--concurrency: 'many' is not a whole number"),
    ([*WORKER, "--batch-size", "0"], "--batch-size: '0': must be at least 1"),
    ([*WORKER, "--batch-wait-ms", "-5"], "--batch-wait-ms: '-5': must be a finite number"),
    ([*WORKER, "--grace-s", "nan"], "--grace-s: 'nan': must be a finite number"),
    ([*WORKER, "--grace-s", "soon"], "--grace-s: 'soon' is not a number"),
    (["demo", "--requests", "0"], "--requests: '0': must be at least 1"),
    (["demo", "--duration", "-1"], "--duration: '-1': must be a finite number"),
]


@pytest.mark.parametrize(("args", "said"), BAD_OPTIONS, ids=lambda a: " ".join(a[-2:]))
def test_a_bad_option_is_a_usage_line_and_exit_2(config: Path, args: list[str], said: str) -> None:
    if args[0] != "demo":
        args = [*args, "-c", str(config)]
    result = tidegate(*args)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("gateway", "refused"),
    [
        ({"listen": "0.0.0.0:8080", "admin_listen": "0.0.0.0:8080"}, True),
        ({"listen": "127.0.0.1:8080", "admin_listen": "0.0.0.0:8080"}, True),
        ({"listen": "[::]:9000", "admin_listen": "127.0.0.1:9000"}, True),
        ({"listen": "127.0.0.1:8080", "admin_listen": "127.0.0.2:8080"}, False),
        ({"listen": "0.0.0.0:8080", "admin_listen": "0.0.0.0:9090"}, False),
        ({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"}, False),
    ],
)
def test_check_refuses_one_port_for_both_listeners(
    tmp_path: Path, gateway: dict[str, str], refused: bool
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"gateway": gateway}))
    result = tidegate("check", "-c", str(path))
    assert result.returncode == (2 if refused else 0), result.stderr
    if refused:
        assert "gateway: listen" in result.stderr or "gateway.listen" in result.stderr
        assert "must be a port of its own" in result.stderr


def test_an_unknown_tidegate_variable_is_named_with_the_nearest_known_one(config: Path) -> None:
    result = tidegate(
        "check", "-c", str(config), env={"TIDEGATE_REDIS_URLL": "redis://x/0", "TIDEGATE_NOPE": "1"}
    )
    assert result.returncode == 0
    assert (
        "TIDEGATE_REDIS_URLL is not a tidegate setting and is ignored; "
        "did you mean TIDEGATE_REDIS_URL?" in result.stderr
    )
    assert "TIDEGATE_NOPE is not a tidegate setting and is ignored" in result.stderr


@pytest.mark.parametrize("command", [["check"], ["status"], ["replay", "--route", "orders"]])
def test_the_event_loop_setting_is_checked_for_every_subcommand(
    config: Path, command: list[str]
) -> None:
    result = tidegate(*command, "-c", str(config), env={"TIDEGATE_EVENT_LOOP": "trio"})
    assert result.returncode == 2
    assert "TIDEGATE_EVENT_LOOP='trio': choose one of uvloop, asyncio" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["check", "-c", "/nonexistent.yaml"], 2),
        (["status", "-c", "{config}"], 1),  # Redis unreachable
        (["worker", "-c", "{config}", "--route", "nope", "--upstream", "http://u"], 2),
        (["check", "-c", "{config}"], 0),
    ],
)
def test_with_json_logs_every_line_is_json_the_fatal_one_included(
    config: Path, args: list[str], code: int
) -> None:
    args = [a.format(config=config) for a in args]
    result = tidegate("--log-format", "json", *args, env={"TIDEGATE_BOGUS": "1"})
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines  # the warning about TIDEGATE_BOGUS at least
    objects = [json.loads(line) for line in lines]  # each line parses
    assert all({"time", "level", "logger", "message"} <= set(o) for o in objects)
    if code:
        assert objects[-1]["level"] == "CRITICAL"
