"""tidegate: a queue-backlog autoscaler and throttling gateway for Kubernetes.

This package is the shared core that the parts (``gateway``, ``worker``,
``scaler``) stand on: settings, the Redis key schema, the job envelope, the
event log and its projection, and the ledger (``tidegate.ledger``), the one
typed way to Redis. The parts import it and never each other; the shell (the
top-level ``shell`` package: the CLI, the demo, operator tools) is the one
layer above them. Each layer is a folder, and import-linter holds the layers
(``pyproject.toml``); ``ARCHITECTURE.md`` draws the map.
"""

__version__ = "0.1.0"
