"""The deterministic fluid model (``python -m simulator --fluid``): kept as a
test of the queue arithmetic. See the package docstring for the model."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from simulator.constants import DRAIN_TAIL_MAX_S, DRAIN_TARGET_S, DT_S, SERVICE_RATE, STARTUP_S
from simulator.controllers import KedaHpa, Tidegate
from simulator.traces import TRACES, Trace
from simulator.world import Controller, Seen


@dataclass
class Result:
    trace: str
    controller: str
    p50_wait_s: float
    p99_wait_s: float
    peak_backlog: int
    replica_s: float
    writes: int
    jobs: int
    served: int


@dataclass
class World:
    queue: deque[list[float]] = field(default_factory=deque)
    """FIFO of [arrival time, jobs] chunks."""
    waiting: float = 0.0
    added: int = 0
    completed: int = 0
    carry_in: float = 0.0
    carry_out: float = 0.0
    pods: list[float] = field(default_factory=list)
    """Ready time of each replica asked for."""
    waits: list[tuple[float, int]] = field(default_factory=list)


def _percentile(waits: list[tuple[float, int]], q: float) -> float:
    total = sum(n for _, n in waits)
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for wait, n in sorted(waits):
        seen += n
        if seen >= rank:
            return wait
    return sorted(waits)[-1][0]


def simulate(trace: Trace, controller: Controller) -> Result:
    w = World()
    t, writes, peak, replica_s = 0.0, 0, 0, 0.0
    end = trace.duration_s + DRAIN_TAIL_MAX_S
    while t < end:
        arriving = trace.rate(t) * DT_S if t < trace.duration_s else 0.0
        w.carry_in += arriving
        n = int(w.carry_in)
        w.carry_in -= n
        if n:
            w.queue.append([t, n])
            w.added += n
            w.waiting += n
        ready = sum(1 for r in w.pods if r <= t)
        w.carry_out += ready * SERVICE_RATE * DT_S
        capacity = int(w.carry_out)
        while capacity and w.queue:
            chunk = w.queue[0]
            take = min(capacity, int(chunk[1]))
            w.waits.append((t - chunk[0], take))
            chunk[1] -= take
            capacity -= take
            w.completed += take
            w.waiting -= take
            if chunk[1] == 0:
                w.queue.popleft()
        w.carry_out = min(w.carry_out - int(w.carry_out) + capacity, 1.0) if w.queue else 0.0
        peak = max(peak, int(w.waiting))
        want = controller.decide(Seen(t, int(w.waiting), w.added, w.completed, ready, len(w.pods)))
        if want is not None and want != len(w.pods):
            writes += 1
            if want > len(w.pods):
                w.pods += [t + STARTUP_S] * (want - len(w.pods))
            else:
                w.pods.sort()  # remove the youngest (not yet ready) first
                del w.pods[want:]
        replica_s += len(w.pods) * DT_S
        t = round(t + DT_S, 6)
        if t >= trace.duration_s and not w.queue and not w.pods:
            break
        if t >= trace.duration_s and not w.queue and t > trace.duration_s + 900:
            break  # drained; what is left is scale-down tail only
    return Result(
        trace=trace.name,
        controller=controller.name,
        p50_wait_s=_percentile(w.waits, 0.50),
        p99_wait_s=_percentile(w.waits, 0.99),
        peak_backlog=peak,
        replica_s=replica_s,
        writes=writes,
        jobs=w.added,
        served=sum(n for _, n in w.waits),
    )


def compare(traces: tuple[Trace, ...] = TRACES) -> list[tuple[Result, Result]]:
    lag_count = int(SERVICE_RATE * DRAIN_TARGET_S)
    return [(simulate(tr, Tidegate()), simulate(tr, KedaHpa(lag_count))) for tr in traces]


def table(pairs: list[tuple[Result, Result]]) -> str:
    lines = [
        "| trace | controller | p50 wait s | p99 wait s | peak backlog | replica-s | writes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for ours, theirs in pairs:
        for r in (ours, theirs):
            lines.append(
                f"| {r.trace} | {r.controller} | {r.p50_wait_s:.1f} | {r.p99_wait_s:.1f} | "
                f"{r.peak_backlog} | {r.replica_s:.0f} | {r.writes} |"
            )
    lines.append("")
    lines.append("| trace | p99 wait ratio (target <= 0.2) | replica-s ratio (target <= 1.1) |")
    lines.append("|---|---:|---:|")
    for ours, theirs in pairs:
        wait = ours.p99_wait_s / theirs.p99_wait_s if theirs.p99_wait_s else 0.0
        cost = ours.replica_s / theirs.replica_s if theirs.replica_s else 0.0
        lines.append(f"| {ours.trace} | {wait:.2f} | {cost:.2f} |")
    return "\n".join(lines)
