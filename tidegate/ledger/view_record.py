"""The scaler's view of each route, kept in Redis for everyone to read.

Redis is the only meeting point of the parts: the gateway's ``/status`` and
``tidegate status`` read this hash (``tg:{route}:scaler``) instead of asking
the scaler. It expires a few intervals after the last write, so a view from a
scaler that stopped does not linger as if current.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tidegate.keys import RouteKeys
from tidegate.ledger.calls import PublishView
from tidegate.ledger.client import Connection, read_again_if_closed, redis_errors, text
from tidegate.ledger.runner import Runner
from tidegate.scaler_view import ScalerView

VIEW_TTL_INTERVALS = 5
MIN_VIEW_TTL_S = 10.0


def encode(view: ScalerView) -> dict[str, str]:
    """The view's fields as they are stored (each a JSON value)."""
    return {k: json.dumps(v) for k, v in view.as_dict().items()}


def parsed(raw: dict[Any, Any]) -> ScalerView | None:
    """A view from its hash, as HGETALL answers it (None: empty)."""
    if not raw:
        return None
    return ScalerView.from_dict({text(k): json.loads(text(v)) for k, v in raw.items()})


class Views:
    """What the scaler last decided per route, for gateways and operators."""

    def __init__(self, redis: Connection) -> None:
        self._redis = redis

    async def publish(
        self,
        route: str,
        view: ScalerView,
        interval_s: float,
        *,
        runner: Runner | None = None,
        encoded: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the route's view (one script call: a batched ``runner`` sends
        many routes' views in one round trip). ``encoded``: the same view's
        fields encoded before (``encode``), when only its time is new."""
        ttl_ms = int(max(MIN_VIEW_TTL_S, interval_s * VIEW_TTL_INTERVALS) * 1000)
        values = dict(encoded) if encoded is not None else encode(view)
        values["updated_at_s"] = json.dumps(view.updated_at_s)
        fields = tuple(part for item in values.items() for part in item)
        with redis_errors("publishing the scaler's view"):
            await (runner or Runner(self._redis)).run(
                PublishView(route=RouteKeys(route), ttl_ms=ttl_ms, fields=fields)
            )

    @staticmethod
    def encode(view: ScalerView) -> dict[str, str]:
        """The view's fields as they are stored (``encode``)."""
        return encode(view)

    async def read(self, route: str) -> ScalerView | None:
        """The latest view, or None when no scaler has published one lately."""
        raw: Any = await read_again_if_closed(
            "reading the scaler's view", lambda: self._redis.hgetall(RouteKeys(route).scaler)
        )
        return parsed(raw)
