"""A simulator of a queue and its workers, to compare scaling policies.

``python -m simulator`` runs every trace in the random world of
``simulator.world`` (the default: Poisson arrivals, random service and
start-up times, a ReplicaSet that may remove busy pods; seeds 1-3 pooled)
with four controllers and prints Markdown tables: p50/p99 wait,
replica-seconds, scale changes per hour and jobs interrupted by scale-in,
and each tidegate row as ratios to KEDA + HPA at its defaults.
``python -m simulator --fluid`` runs the deterministic fluid model below
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
The traces are in ``simulator.traces``.

The simulator lives next to the tests, outside the installed packages: the
image and the wheel carry the scaler, not its test bench (a test reads the
wheel). Run it from a checkout: ``python -m simulator``.
"""
