"""Options every subcommand takes (logging), its --help, and the JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shell import logs
from shell.cli import build_parser
from tidegate import log_context

SUBCOMMANDS = [
    ["gateway", "-c", "x.yaml"],
    ["worker", "-c", "x.yaml", "--route", "r", "--upstream", "http://u"],
    ["scaler", "-c", "x.yaml"],
    ["demo"],
    ["status", "-c", "x.yaml"],
    ["replay", "-c", "x.yaml", "--route", "r"],
    ["check", "-c", "x.yaml"],
]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c[0])
def test_every_subcommand_takes_the_options_before_and_after_it(command: list[str]) -> None:
    parser = build_parser()
    default = parser.parse_args(command)
    assert (default.log_level, default.log_format) == ("INFO", "text")
    before = parser.parse_args(["--log-level", "warning", "--log-format", "JSON", *command])
    assert (before.log_level, before.log_format) == ("WARNING", "json")
    after = parser.parse_args([*command, "--log-level", "debug", "--log-format", "json"])
    assert (after.log_level, after.log_format) == ("DEBUG", "json")
    both = parser.parse_args(["--log-level", "error", *command, "--log-level", "info"])
    assert both.log_level == "INFO"  # the later one wins


def test_the_environment_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEGATE_LOG_LEVEL", "warning")
    monkeypatch.setenv("TIDEGATE_LOG_FORMAT", "json")
    args = build_parser().parse_args(["check", "-c", "x.yaml"])
    assert (args.log_level, args.log_format) == ("WARNING", "json")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--log-level", "loud", "check", "-c", "x"], "'loud' is not one of DEBUG"),
        (["check", "-c", "x", "--log-level", "5"], "'5' is not one of DEBUG"),
        (["check", "-c", "x", "--log-format", "xml"], "'xml' is not one of text, json"),
    ],
)
def test_an_unknown_value_is_one_line_and_exit_2(args: list[str], said: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("tidegate.test.json")
    log.addHandler(handler)
    log.propagate = False
    yield log, stream
    log.removeHandler(handler)
    log.propagate = True


def test_json_lines_carry_time_level_logger_message_route_job_and_error(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = json_log
    where = {"route": "orders", "job": "j1"}
    log.warning('job %s: ü "quoted"\nsecond line', "j1", extra=where)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING"
    assert first["logger"] == "tidegate.test.json"
    assert first["message"] == 'job j1: ü "quoted"\nsecond line'
    assert (first["route"], first["job"]) == ("orders", "j1")
    assert first["time"].endswith("Z")
    assert len(first["time"]) == len("2026-11-27T12:00:00.000Z")
    assert "route" not in second
    assert "ValueError: boom" in second["error"]


async def test_json_lines_name_the_route_and_job_of_the_task_that_logs(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = json_log

    async def job_task(route: str, job: str) -> None:
        log_context.ROUTE.set(route)
        log_context.JOB.set(job)
        await asyncio.sleep(0)  # the other task runs in between
        log.warning("working")

    await asyncio.gather(job_task("orders", "orders.a"), job_task("reports", "reports.b"))
    log.warning("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x.get("route"), x.get("job")) for x in lines] == [
        ("orders", "orders.a"),
        ("reports", "reports.b"),
        (None, None),
    ]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c[0])
def test_every_subcommand_s_help_describes_it_and_shows_an_example(command: list[str]) -> None:
    name = command[0]
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", name, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "example:" in result.stdout
    assert f"tidegate {name} " in result.stdout.split("example:")[1]
    assert "--log-format" in result.stdout
