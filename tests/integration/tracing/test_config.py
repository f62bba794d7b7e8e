"""Turning tracing on from the command line: a part started with ``OTEL_*``
variables it cannot serve stops at once with one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.worker_processes import REPO

ENDPOINT = "http://127.0.0.1:9/"


@pytest.mark.parametrize("part", ["gateway", "worker"])
@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, "pip install 'tidegate[otel]'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http/protobuf only",
        ),
    ],
)
def test_tracing_that_cannot_be_had_stops_the_part_with_one_line(
    part: str, env: dict[str, str], said: str, tmp_path: Path
) -> None:
    # A package that fails to import stands for the extra not installed.
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": "redis://127.0.0.1:9"},
                "routes": [{"name": "r", "match": {"path_prefix": "/r"}}],
            }
        )
    )
    args = ["-c", str(config)] + (
        ["--route", "r", "--upstream", "http://127.0.0.1:9"] if part == "worker" else []
    )
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", part, *args],
        env={**os.environ, "PYTHONPATH": f"{shadow.parent}:{REPO}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert said in lines[0]
