"""The scaler: the controller that sizes each route's workers to its backlog.

So far: ``policy``, the pure scaling decision (rates, learned service rate,
Little's law sizing, activation, scale-down window, tolerance, exhaustion),
tested with fake time. Still to come: sampling from Redis (through
``tidegate.ledger.backlog``), the actuators (Kubernetes scale subresource, local
processes), leader election and the BacklogScaler resource. Like the gateway
and the worker, it imports only ``tidegate`` and meets the other parts in
Redis.
"""
