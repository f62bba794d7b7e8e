"""The traced tiers of ``bench/sync_cpu.py --tracing``: a second gateway and
worker with spans on, exporting over OTLP/HTTP to ``bench/otlp_sink.py``,
and the sink's span count, to tell whether the exporters kept up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import LOAD_CORE, SERVER_CORE, config, pinned

from shell.local_redis import free_port, wait_for_port

HERE = Path(__file__).resolve().parent
SPANS_PER_REQUEST = {"sync+otel": 5, "proxy+otel": 2, "async+otel": 2}
"""Spans one request of a traced tier makes: server, send or client call;
for a sync one also the worker's process, call and finish."""


@dataclass
class Traced:
    """The second gateway and worker, with spans on, and their sink."""

    gateway: str
    sink: str

    def spans(self) -> int:
        with urllib.request.urlopen(f"{self.sink}/count", timeout=5) as answer:
            return int(json.load(answer)["spans"])

    def settled(self) -> int:
        """The sink's span count once the exporters have sent what they held
        (unchanged for two of their export periods)."""
        count, still = self.spans(), 0
        while still < 2:
            time.sleep(EXPORT_DELAY_S)
            now = self.spans()
            still = still + 1 if now == count else 0
            count = now
        return count


EXPORT_DELAY_S = 0.2


def start_traced(
    procs: dict[str, subprocess.Popen[bytes]],
    folder: Path,
    redis_port: int,
    upstream: str,
    part: list[str],
    quiet: dict[str, Any],
    tracing: bool,
) -> Traced | None:
    """With ``--tracing``: a second gateway and worker with spans on (Redis
    database 1, so neither takes the other's jobs) and the sink they export to."""
    if not tracing:
        return None
    sink_port, gateway_port = free_port(), free_port()
    procs["sink"] = pinned(LOAD_CORE, [sys.executable, str(HERE / "otlp_sink.py"), str(sink_port)])
    (folder / "otel").mkdir()
    redis_url = f"redis://127.0.0.1:{redis_port}/1"
    path = config(folder / "otel", redis_url, upstream, gateway_port, False)
    env = {
        **quiet["env"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": str(int(EXPORT_DELAY_S * 1000)),
    }
    traced = {**quiet, "env": env}
    procs["gateway+otel"] = pinned(SERVER_CORE, [*part, "gateway", "-c", str(path)], **traced)
    procs["worker+otel"] = pinned(
        LOAD_CORE,
        [*part, "worker", "-c", str(path), "--route", "sync", "--upstream", upstream],
        **traced,
    )
    wait_for_port(sink_port, 20.0)
    wait_for_port(gateway_port, 20.0)
    return Traced(f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{sink_port}")
