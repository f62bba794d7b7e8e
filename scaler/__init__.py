"""The scaler: the controller that sizes each route's workers to its backlog.

Files are named for what they hold:

- ``main``: wiring (Kubernetes access, leader election, Redis, admin port);
- ``controller``: ``Controller``, which runs one ``RouteLoop`` per route to
  scale, as ``route_sources`` finds them (config file, ``BacklogScaler``
  resources);
- ``route_loop``: ``RouteLoop``, one route's sample -> decide -> write step,
  at the phase ``phases`` gives it; ``route_report`` sets its gauges and
  publishes its view; ``predictor_memory`` keeps the arrival history;
- ``sampling``: a route's counters and gauges from Redis (the ledger);
- ``policy``: the pure scaling decision (Little's law sizing, activation,
  scale-down window, tolerance), with ``rates`` for its arithmetic,
  ``policy_io`` for its settings, samples and decisions, and ``predict``;
- ``throttle_governor``: ``ThrottleGovernor``, the pure throttle decision;
  ``throttle_keeper``: ``ThrottleKeeper``, which keeps the route's throttle in Redis;
- ``status``: the BacklogScaler's status and Events;
- actuators (``actuator``, ``deployment``: the scale subresource, ``local``:
  worker processes), ``kube`` (the API client and its errors), ``lease``
  (leader election, ``shards``), ``resources`` (the custom resource),
  ``informer`` (a Deployments cache), ``metrics``.

The simulator comparing the policy with KEDA + HPA is not part of the
package: it lives in the checkout's ``simulator/``.

Like the gateway and the worker, it imports only ``tidegate`` and meets the
other parts in Redis.
"""
