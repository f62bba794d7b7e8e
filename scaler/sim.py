"""A simulator of a queue and its workers, to compare scaling policies.

``python -m scaler.sim`` runs every trace in the random world of
``scaler.stochastic`` (the default: Poisson arrivals, random service and
start-up times, a ReplicaSet that may remove busy pods; seeds 1-3 pooled)
with four controllers and prints Markdown tables: p50/p99 wait,
replica-seconds, scale changes per hour and jobs interrupted by scale-in,
and each tidegate row as ratios to KEDA + HPA at its defaults.
``python -m scaler.sim --fluid`` runs the deterministic fluid model below
instead (two controllers; kept as a test of the queue arithmetic).

The fluid model, in steps of ``DT_S`` (0.1 s):

- **Arrivals** follow the trace's rate ``lambda(t)`` (fluid: fractional jobs
  carry over to the next step, so runs are exactly repeatable; the bursty
  trace draws its bursts from a seeded generator).
- **Service**: every ready replica completes ``SERVICE_RATE`` jobs per second,
  first in, first out. A job's wait is the time from its arrival to the start
  of its service.
- **Pods**: a replica asked for becomes ready after ``STARTUP_S`` (default
  10 s); a replica removed stops at once. Replica-seconds count every
  replica asked for, starting or ready: that is what the cluster pays for.
- After the trace ends, arrivals stop and the run continues until the queue
  is empty, so every job's wait is counted.

Controllers:

- **tidegate**: ``scaler.policy.Policy`` with its defaults, sampled every
  second, as the real scaler runs it; it marks idle pods cheapest to delete
  (graceful scale-in). **tidegate + predict** adds ``predict: periodic``.
- **KEDA + HPA**: KEDA's Redis Streams ``lagCount`` scaler polled every 30 s
  (its default ``pollingInterval``) feeding an HPA with the Kubernetes
  defaults: 15 s sync, AverageValue target ``lagCount`` per replica (desired
  = ceil(lag / lagCount)), 10% tolerance, scale-up at most max(4 pods, 100%)
  per 15 s with no stabilization, scale-down to the highest recommendation of
  the last 300 s and at most 100% per 15 s; KEDA activates 0 -> 1 when a poll
  sees lag > 0 and deactivates after its 300 s ``cooldownPeriod`` without
  any. The lag it sees is the group's entries not yet delivered. Two
  variants: ``lagCount`` 5 (KEDA's default), and sized to what one replica
  drains in the drain target (service rate x drain target), the choice an
  operator sizing for that target would make (the fluid model's only one).
The traces are in ``scaler.traces``.
"""

from __future__ import annotations

import argparse
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from scaler import stochastic
from scaler.policy import Policy, PolicySettings, Sample
from scaler.stochastic import Controller, Seen, WorldSettings
from scaler.traces import TRACES, Trace

__all__ = ["TRACES", "KedaHpa", "Tidegate", "Trace", "compare", "simulate"]

DT_S = 0.1
SERVICE_RATE = 10.0
"""Jobs per second one replica completes."""
STARTUP_S = 10.0
MAX_REPLICAS = 40
DRAIN_TARGET_S = 30.0
DRAIN_TAIL_MAX_S = 3600.0


class Tidegate:
    name = "tidegate"
    graceful = True

    def __init__(self, phase_s: float = 0.0, predict: bool = False) -> None:
        self.policy = Policy(
            PolicySettings(
                max_replicas=MAX_REPLICAS, drain_target_s=DRAIN_TARGET_S, predict=predict
            )
        )
        self.next_s = phase_s % 1.0

    def decide(self, seen: Seen) -> int | None:
        if seen.t < self.next_s:
            return None
        self.next_s = seen.t + 1.0
        sample = Sample(
            seen.t,
            seen.waiting,
            seen.pending,
            seen.added,
            seen.completed,
            seen.ready,
            seen.desired,
            busy_replicas=seen.busy,
        )
        return self.policy.decide(sample).replicas


class KedaHpa:
    name = "KEDA + HPA"
    graceful = False

    def __init__(self, lag_count: int, phase_s: float = 0.0, name: str | None = None) -> None:
        self.lag_count = lag_count
        self.name = name or self.name
        self.metric = 0
        self.next_poll_s = phase_s % 30.0
        self.next_sync_s = phase_s % 15.0
        self.last_active_s = -math.inf
        self.recommendations: deque[tuple[float, int]] = deque()

    def decide(self, seen: Seen) -> int | None:
        t, waiting, desired = seen.t, seen.waiting, seen.desired
        out: int | None = None
        if t >= self.next_poll_s:  # KEDA polls the scaler
            self.next_poll_s = t + 30.0
            self.metric = waiting
            if waiting > 0:
                self.last_active_s = t
                if desired == 0:
                    self.next_sync_s = t + 15.0  # the HPA takes over from its next sync
                    return 1  # activation
            elif desired > 0 and t - self.last_active_s >= 300.0:
                return 0  # cooldownPeriod over: deactivated
        if desired == 0 or t < self.next_sync_s:
            return out
        self.next_sync_s = t + 15.0
        # The HPA: AverageValue target, tolerance, behaviour defaults.
        ratio = self.metric / (self.lag_count * desired)
        raw = desired if abs(ratio - 1) <= 0.1 else math.ceil(self.metric / self.lag_count)
        raw = min(max(raw, 1), MAX_REPLICAS)
        self.recommendations.append((t, raw))
        while self.recommendations[0][0] < t - 300.0:
            self.recommendations.popleft()
        if raw > desired:
            target = min(raw, desired + max(4, desired))
        else:
            stabilized = max(r for _, r in self.recommendations)
            target = max(min(stabilized, desired), desired - desired)  # <= 100% per period
        return target if target != desired else out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", choices=[t.name for t in TRACES], action="append")
    parser.add_argument(
        "--fluid", action="store_true", help="the deterministic fluid model instead"
    )
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="stochastic runs per trace")
    args = parser.parse_args()
    chosen = tuple(t for t in TRACES if not args.trace or t.name in args.trace)
    if args.fluid:
        print(table(compare(chosen)))
    else:
        print(stochastic_table(compare_stochastic(chosen, tuple(range(1, args.seeds + 1)))))


if __name__ == "__main__":
    main()
