"""The stochastic comparison (``python -m simulator``, the default): every
controller on every trace in the random world of ``simulator.world``, pooled
over seeds and clock phases, printed as Markdown tables."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from simulator import world as stochastic
from simulator.constants import DRAIN_TARGET_S, MAX_REPLICAS, SERVICE_RATE, STARTUP_S
from simulator.controllers import KedaHpa, Tidegate
from simulator.traces import TRACES, Trace
from simulator.world import Controller, WorldSettings

SEEDS = (1, 2, 3)
"""Seeds of the stochastic runs; each also sets the controllers' clock phase."""


@dataclass
class Pooled:
    """A controller on a trace, pooled over seeds and clock phases."""

    trace: str
    controller: str
    p50_wait_s: float
    p99_wait_s: float
    replica_s: float
    """Per run, on average."""
    changes_per_h: float
    interrupted: float
    """Jobs interrupted by scale-in, per run, on average."""
    runs: int


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pooled(
    trace: Trace, name: str, make: Callable[[float], Controller], seeds: tuple[int, ...] = SEEDS
) -> Pooled:
    """Run ``make(phase)`` on ``trace`` once per seed; the phase (where in its
    poll and sync periods each controller's clock starts) differs per seed."""
    waits: list[float] = []
    replica_s = changes = interrupted = hours = 0.0
    world = WorldSettings(service_rate=SERVICE_RATE, startup_s=STARTUP_S, max_replicas=MAX_REPLICAS)
    for seed in seeds:
        phase_s = random.Random(seed).uniform(0, 30)
        out = stochastic.run(trace, make(phase_s), world, seed)
        waits.extend(out.waits)
        replica_s += out.replica_s
        changes += out.changes
        interrupted += out.interrupted
        hours += out.duration_s / 3600
    waits.sort()
    return Pooled(
        trace=trace.name,
        controller=name,
        p50_wait_s=_quantile(waits, 0.50),
        p99_wait_s=_quantile(waits, 0.99),
        replica_s=replica_s / len(seeds),
        changes_per_h=changes / hours if hours else 0.0,
        interrupted=interrupted / len(seeds),
        runs=len(seeds),
    )


CONTROLLERS: dict[str, Callable[[float], Controller]] = {
    "tidegate": Tidegate,
    "tidegate + predict": lambda phase: Tidegate(phase, predict=True),
    "KEDA + HPA (defaults)": lambda phase: KedaHpa(5, phase, name="KEDA + HPA (defaults)"),
    "KEDA + HPA (sized)": lambda phase: KedaHpa(
        int(SERVICE_RATE * DRAIN_TARGET_S), phase, name="KEDA + HPA (sized)"
    ),
}
"""The stochastic comparison: tidegate (reactive, and with ``predict``), KEDA +
HPA at the documented defaults (lagCount 5), and KEDA + HPA with lagCount
sized to the drain target."""


def compare_stochastic(
    traces: tuple[Trace, ...] = TRACES, seeds: tuple[int, ...] = SEEDS
) -> list[list[Pooled]]:
    return [[pooled(tr, name, make, seeds) for name, make in CONTROLLERS.items()] for tr in traces]


def stochastic_table(rows: list[list[Pooled]]) -> str:
    lines = [
        "| trace | controller | p50 wait s | p99 wait s | replica-s | changes/h | interrupted |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for group in rows:
        for r in group:
            lines.append(
                f"| {r.trace} | {r.controller} | {r.p50_wait_s:.2f} | {r.p99_wait_s:.2f} | "
                f"{r.replica_s:.0f} | {r.changes_per_h:.0f} | {r.interrupted:.1f} |"
            )
    lines += [
        "",
        "Against KEDA + HPA (defaults):",
        "",
        "| trace | controller | p99 wait ratio | replica-s ratio | changes ratio "
        "| interrupted (ours / theirs) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for group in rows:
        theirs = next(r for r in group if r.controller == "KEDA + HPA (defaults)")

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b else "-"

        for ours in (r for r in group if r.controller.startswith("tidegate")):
            lines.append(
                f"| {ours.trace} | {ours.controller} | "
                f"{ratio(ours.p99_wait_s, theirs.p99_wait_s)} | "
                f"{ratio(ours.replica_s, theirs.replica_s)} | "
                f"{ratio(ours.changes_per_h, theirs.changes_per_h)} | "
                f"{ours.interrupted:.1f} / {theirs.interrupted:.1f} |"
            )
    return "\n".join(lines)
