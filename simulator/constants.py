"""The world both models share: one replica's service rate, its start-up
time, the replica limit and the drain target every controller is given."""

from __future__ import annotations

DT_S = 0.1
SERVICE_RATE = 10.0
"""Jobs per second one replica completes."""
STARTUP_S = 10.0
MAX_REPLICAS = 40
DRAIN_TARGET_S = 30.0
DRAIN_TAIL_MAX_S = 3600.0
