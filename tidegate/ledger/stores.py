"""The small records beside the jobs, each a typed store bound to the
process's connection (``store.Store`` makes them; a part never sees the
connection they hold). Each lives with its record's Redis commands:

- ``Throttles`` (``throttle_record``): a route's throttle, set and lifted by
  the scaler, read by gateways;
- ``Liveness`` (``liveness``): who is alive and how busy;
- ``History`` (``history``): a route's arrival history, for prediction;
- ``Views`` (``view_record``): what the scaler last decided per route.
"""

from __future__ import annotations

from tidegate.ledger.history import History
from tidegate.ledger.liveness import Liveness
from tidegate.ledger.throttle_record import Throttles
from tidegate.ledger.view_record import Views

__all__ = ["History", "Liveness", "Throttles", "Views"]
