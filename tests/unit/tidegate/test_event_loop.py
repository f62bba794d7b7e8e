"""The event loop a part runs on (``tidegate.process``): uvloop unless
``TIDEGATE_EVENT_LOOP`` says asyncio; a wrong name stops the start with one
line, before anything connects."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop
import yaml

from shell.cli import main
from tidegate.errors import ConfigError
from tidegate.process import EVENT_LOOP_ENV, event_loop_name, run_until_signalled


def loop_of_a_part() -> type[asyncio.AbstractEventLoop]:
    """The type of loop ``run_until_signalled`` runs a part's coroutine on."""
    seen: list[type[asyncio.AbstractEventLoop]] = []

    async def serve(stop: asyncio.Event) -> None:
        seen.append(type(asyncio.get_running_loop()))

    run_until_signalled(serve)
    (loop_type,) = seen
    return loop_type


def test_a_part_runs_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert loop_of_a_part() is uvloop.Loop


@pytest.mark.parametrize(
    ("value", "uses_uvloop"),
    [("asyncio", False), (" AsyncIO ", False), ("uvloop", True), ("UVLOOP", True), ("", True)],
)
def test_the_environment_chooses_the_loop(
    monkeypatch: pytest.MonkeyPatch, value: str, uses_uvloop: bool
) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, value)
    loop_type = loop_of_a_part()
    assert (loop_type is uvloop.Loop) is uses_uvloop
    assert issubclass(loop_type, asyncio.AbstractEventLoop)


@pytest.mark.parametrize("value", ["trio", "uv loop", "asyncio,uvloop", "\udcff"])
def test_a_name_that_is_no_loop_is_refused_before_the_part_starts(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    started: list[bool] = []

    async def serve(stop: asyncio.Event) -> None:
        started.append(True)

    with pytest.raises(ConfigError) as refused:
        event_loop_name({EVENT_LOOP_ENV: value})
    assert EVENT_LOOP_ENV in str(refused.value)
    assert "uvloop, asyncio" in str(refused.value)
    monkeypatch.setenv(EVENT_LOOP_ENV, value)
    with pytest.raises(ConfigError):
        run_until_signalled(serve)
    assert started == []


def test_the_cli_says_it_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # Nothing listens there: the start must stop before connecting.
                "redis": {"url": "redis://127.0.0.1:1/0"},
                "routes": [{"name": "orders", "match": {"path_prefix": "/orders"}}],
            }
        )
    )
    monkeypatch.setenv(EVENT_LOOP_ENV, "trio")
    assert main(["gateway", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"tidegate: {EVENT_LOOP_ENV}='trio'")


def test_without_uvloop_the_default_says_how_to_run_on_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop fails as if absent
    with pytest.raises(ConfigError) as refused:
        event_loop_name({})
    assert f"{EVENT_LOOP_ENV}=asyncio" in str(refused.value)
    assert event_loop_name({EVENT_LOOP_ENV: "asyncio"}) == "asyncio"
