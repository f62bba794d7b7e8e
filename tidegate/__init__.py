"""tidegate: a queue-backlog autoscaler and throttling gateway for Kubernetes.

This package is the shared core that the parts (``gateway``, ``worker``,
``scaler``) stand on: settings, the Redis key schema, the job envelope, the
event log and its projection. The parts import it and never each other; the
CLI (``tidegate.shell.cli``) is the one module above them.
"""

__version__ = "0.1.0"
