"""The scaler: the controller that sizes each route's workers to its backlog.

Files are named for what they hold:

- ``main``: wiring (Kubernetes access, leader election, Redis, admin port);
- ``controller``: ``Controller``, which gathers the routes to scale (config
  file, ``BacklogScaler`` resources) and runs one ``RouteLoop`` per route;
- ``route_loop``: ``RouteLoop``, one route's sample -> decide -> write step;
- ``sampling``: a route's counters and gauges from Redis (the ledger);
- ``policy``: the pure scaling decision (Little's law sizing, activation,
  scale-down window, tolerance), with ``rates`` for its arithmetic;
- ``exhaustion``: ``ThrottleGovernor``, the pure throttle decision;
  ``throttle``: ``ThrottleKeeper``, which keeps the route's throttle in Redis;
- ``status``: the BacklogScaler's status and Events;
- actuators (``actuator``, ``deployment``: the scale subresource, ``local``:
  worker processes), ``kube`` (the API client and its errors), ``lease``
  (leader election), ``resources`` (the custom resource), ``metrics``;
- ``sim``: the simulator comparing the policy with KEDA + HPA.

Like the gateway and the worker, it imports only ``tidegate`` and meets the
other parts in Redis.
"""
