"""The simulator's random world: what a scaling policy meets in a cluster.

``simulator`` runs a controller against a world in steps of ``dt_s``. This
world (the default) is random, and seeded, so a run repeats exactly:

- **Arrivals**: Poisson, at the trace's rate; each job arrives at a uniform
  moment within its step.
- **Service**: a replica serves one job at a time; service times are
  exponential around ``1 / service_rate``. A job's wait is the time from its
  arrival to the start of the service that completes it.
- **Pods**: a replica asked for becomes ready after a start-up time drawn
  log-normally around ``startup_s`` (median; ``startup_sigma`` its spread),
  the way image pulls and scheduling vary.
- **Scale-in** removes pods the way a ReplicaSet chooses them: pods not yet
  ready first, then by ``controller.kubernetes.io/pod-deletion-cost``
  (lowest first; only a controller that sets it, ``graceful``, has one: it
  marks idle pods cheaper than busy ones), then the most recently ready. A
  removed pod that was serving a job interrupts it: the job is redelivered
  after the visibility timeout (``visibility_s``), first in line, and counted
  as interrupted. This models jobs longer than the worker's shutdown grace;
  with short jobs and a drain on SIGTERM a real worker finishes most of them.
- A trace may begin with a warm-up (``Trace.warmup_s``) that only teaches:
  jobs arriving in it, and the cost and changes of that time, are not counted.
- ``waiting`` is what a consumer group reports as not yet delivered;
  interrupted jobs waiting for redelivery are ``pending``, as in Redis.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from simulator.traces import Trace


@dataclass(frozen=True)
class Seen:
    """What a controller can observe of the world at ``t`` (seconds)."""

    t: float
    waiting: int
    """Jobs not yet delivered (a consumer group's lag)."""
    added: int
    """Jobs ever added (a counter)."""
    completed: int
    """Jobs ever completed (a counter)."""
    ready: int
    desired: int
    pending: int = 0
    """Delivered and not acknowledged: in service, or waiting for redelivery."""
    busy: int | None = None
    """Replicas serving a job now, as workers publish it (None: not known)."""


class Controller(Protocol):
    name: str
    graceful: bool
    """Marks idle pods cheapest to delete before scaling in."""

    def decide(self, seen: Seen) -> int | None:
        """Replicas to ask for, or None to leave them."""
        ...


@dataclass(frozen=True)
class WorldSettings:
    service_rate: float = 10.0
    """Jobs per second one replica completes, on average."""
    startup_s: float = 10.0
    """Median start-up time of a pod."""
    startup_sigma: float = 0.25
    """Spread of the start-up time (log-normal sigma; 0: always ``startup_s``)."""
    visibility_s: float = 30.0
    """An interrupted job is redelivered this long after its pod went away."""
    max_replicas: int = 40
    dt_s: float = 0.1
    drain_tail_max_s: float = 3600.0
    """After the trace, the run goes on until the queue is empty, at most this long."""


@dataclass
class Pod:
    created_s: float
    ready_s: float
    free_s: float = 0.0
    """When the job in service ends (or ended)."""
    job: tuple[float, float] | None = None
    """(arrival, start) of the job in service."""

    def busy_at(self, t: float) -> bool:
        return self.job is not None and self.free_s > t


@dataclass
class Outcome:
    """One run: every job's wait, what it cost, how it moved."""

    waits: list[float] = field(default_factory=list)
    replica_s: float = 0.0
    changes: int = 0
    interrupted: int = 0
    peak_backlog: int = 0
    jobs: int = 0
    duration_s: float = 0.0


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; a normal approximation for large means)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class World:
    def __init__(self, settings: WorldSettings, seed: int) -> None:
        self.s = settings
        self.rng = random.Random(seed)
        self.queue: deque[float] = deque()
        """Arrival times of jobs not yet delivered, in delivery order."""
        self.redeliver: list[tuple[float, float]] = []
        """(due, arrival) of interrupted jobs (a heap)."""
        self.pods: list[Pod] = []
        self.added = 0
        self.completed = 0
        self.counted_from_s = 0.0
        """Jobs that arrived earlier, and what happened earlier, only teach."""
        self.out = Outcome()

    def _service_s(self) -> float:
        return self.rng.expovariate(self.s.service_rate)

    def _startup_s(self) -> float:
        if self.s.startup_sigma <= 0:
            return self.s.startup_s
        return self.s.startup_s * math.exp(self.rng.gauss(0.0, self.s.startup_sigma))

    def arrive(self, t: float, rate: float) -> None:
        n = poisson(self.rng, rate * self.s.dt_s)
        for at in sorted(t + self.rng.random() * self.s.dt_s for _ in range(n)):
            self.queue.append(at)
        self.added += n
        if t >= self.counted_from_s:
            self.out.jobs += n

    def _complete(self, pod: Pod) -> None:
        assert pod.job is not None
        arrival, start = pod.job
        if arrival >= self.counted_from_s:
            self.out.waits.append(start - arrival)
        self.completed += 1
        pod.job = None

    def serve(self, t: float) -> None:
        """Every ready pod works through the step [t, t + dt)."""
        end = t + self.s.dt_s
        while self.redeliver and self.redeliver[0][0] <= t:
            _, arrival = heapq.heappop(self.redeliver)
            self.queue.appendleft(arrival)  # reclaimed before new entries are read
        free: list[tuple[float, int, Pod]] = []
        for n, pod in enumerate(self.pods):
            if pod.ready_s >= end:
                continue
            if pod.job is not None:
                if pod.free_s >= end:
                    continue  # busy the whole step
                self._complete(pod)
            free.append((max(pod.free_s, pod.ready_s, t), n, pod))
        heapq.heapify(free)
        while free and self.queue:
            at, n, pod = heapq.heappop(free)
            if at >= end:
                break
            start = max(at, self.queue[0])
            if start >= end:
                break  # the next job arrives after this step
            arrival = self.queue.popleft()
            pod.job, pod.free_s = (arrival, start), start + self._service_s()
            if pod.free_s < end:
                self._complete(pod)
                heapq.heappush(free, (pod.free_s, n, pod))
        self.out.peak_backlog = max(self.out.peak_backlog, len(self.queue))

    def ready(self, t: float) -> int:
        return sum(1 for p in self.pods if p.ready_s <= t)

    def seen(self, t: float) -> Seen:
        return Seen(
            t,
            len(self.queue),
            self.added,
            self.completed,
            self.ready(t),
            len(self.pods),
            self.pending,
            self.busy(t),
        )

    def busy(self, t: float) -> int:
        """Pods serving a job now (what workers publish)."""
        return sum(1 for p in self.pods if p.busy_at(t))

    @property
    def pending(self) -> int:
        return sum(1 for p in self.pods if p.job is not None) + len(self.redeliver)

    def scale(self, t: float, want: int, graceful: bool) -> None:
        have = len(self.pods)
        if want == have:
            return
        counted = t >= self.counted_from_s
        self.out.changes += counted
        if want > have:
            for _ in range(want - have):
                self.pods.append(Pod(created_s=t, ready_s=t + self._startup_s()))
            return

        def rank(pod: Pod) -> tuple[bool, int, float, float]:
            cost = int(pod.busy_at(t)) if graceful else 0
            return (pod.ready_s <= t, cost, -pod.ready_s, -pod.created_s)

        self.pods.sort(key=rank)
        for pod in self.pods[: have - want]:
            if pod.job is not None and pod.busy_at(t):
                self.out.interrupted += counted
                heapq.heappush(self.redeliver, (t + self.s.visibility_s, pod.job[0]))
        del self.pods[: have - want]


def run(trace: Trace, controller: Controller, settings: WorldSettings, seed: int) -> Outcome:
    """One seeded run of a controller on a trace; every job's wait is counted."""
    w = World(settings, seed)
    w.counted_from_s = trace.warmup_s
    t, dt = 0.0, settings.dt_s
    end = trace.duration_s + settings.drain_tail_max_s
    while t < end:
        if t < trace.duration_s:
            w.arrive(t, trace.rate(t))
        w.serve(t)
        want = controller.decide(w.seen(t))
        if want is not None:
            w.scale(t, min(max(want, 0), settings.max_replicas), controller.graceful)
        if t >= trace.warmup_s:
            w.out.replica_s += len(w.pods) * dt
        t = round(t + dt, 6)
        idle = not w.queue and not w.redeliver and all(p.job is None for p in w.pods)
        if t >= trace.duration_s and idle and (not w.pods or t > trace.duration_s + 900):
            break
    w.out.duration_s = t - trace.warmup_s
    return w.out
