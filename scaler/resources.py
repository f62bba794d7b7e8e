"""``BacklogScaler`` custom resources (``tidegate.io/v1alpha1``).

A BacklogScaler names a route and carries the same keys as a route's
``scaler:`` section of the config file (``spec.route`` plus those keys; the
target's namespace defaults to the resource's own; ``spec.partitions`` names
the route's partitions when the config file the scaler reads does not hold
the route). The scaler lists them in
its watched namespaces every ``resync_s``, validates each spec with the very
settings class the config file uses, and keeps each one's status current:
observed lag, rates, replicas and the conditions ``Active``, ``Exhausted``
and ``MetricsAvailable``. A spec that does not validate is reported in its
status (``Active`` false, reason ``InvalidSpec``) instead of stopping the
scaler. Status is written with a JSON merge patch on the status subresource,
so the spec (owned by the user) is never touched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import watch
from pydantic import ValidationError

from scaler.kube import Kube
from tidegate.settings import MAX_PARTITIONS, ROUTE_NAME, ScalerSettings

GROUP = "tidegate.io"
VERSION = "v1alpha1"
PLURAL = "backlogscalers"
KIND = "BacklogScaler"
WATCH_RETRY_S = 5.0

new_watch: Callable[[], Any] = watch.Watch  # the watch module carries no type annotations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceRef:
    namespace: str
    name: str
    uid: str
    generation: int
    created: str

    @property
    def describe(self) -> str:
        return f"backlogscaler {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Parsed:
    ref: ResourceRef
    route: str | None
    settings: ScalerSettings | None
    error: str | None
    partitions: int | None = None
    """``spec.partitions``: the route's partitions, when the spec names them."""


def parse(obj: dict[str, Any]) -> Parsed:
    """Read one BacklogScaler; ``error`` says what is wrong with its spec."""
    meta = obj.get("metadata") or {}
    ref = ResourceRef(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        created=str(meta.get("creationTimestamp") or ""),
    )
    spec = dict(obj.get("spec") or {})
    route = spec.pop("route", None)
    if not isinstance(route, str) or not ROUTE_NAME.match(route):
        return Parsed(ref, None, None, "spec.route: required, a route name of [a-z0-9-]")
    partitions = spec.pop("partitions", None)
    if partitions is not None and (
        not isinstance(partitions, int)
        or isinstance(partitions, bool)
        or not 1 <= partitions <= MAX_PARTITIONS
    ):
        return Parsed(ref, route, None, f"spec.partitions: an integer from 1 to {MAX_PARTITIONS}")
    target = spec.get("target")
    if isinstance(target, dict):
        spec["target"] = {"kind": "deployment", "namespace": ref.namespace, **target}
    try:
        settings = ScalerSettings(**spec)
    except ValidationError as e:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        return Parsed(ref, route, None, problems)
    except TypeError as e:
        return Parsed(ref, route, None, f"spec: {e}")
    if settings.target.kind != "deployment":
        return Parsed(ref, route, None, "spec.target.kind: only deployment targets in a cluster")
    return Parsed(ref, route, settings, None, partitions)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def merge_conditions(
    old: list[dict[str, Any]], new: list[dict[str, str]], now: str
) -> list[dict[str, Any]]:
    """New conditions, keeping ``lastTransitionTime`` where the status did not change."""
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = before.get(c["type"])
        changed = prev is None or prev.get("status") != c["status"]
        since = now if changed or prev is None else prev.get("lastTransitionTime", now)
        out.append({**c, "lastTransitionTime": since})
    return out


async def list_resources(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    reply: Any = await kube.call(
        f"listing backlogscalers in {namespace}",
        kube.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
    )
    return list(reply.get("items") or [])


async def patch_status(kube: Kube, ref: ResourceRef, status: dict[str, Any]) -> None:
    await kube.call(
        f"updating the status of {ref.describe}",
        kube.custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        ref.namespace,
        PLURAL,
        ref.name,
        {"status": status},
    )


async def emit_event(kube: Kube, ref: ResourceRef, reason: str, message: str, kind: str) -> None:
    """A core/v1 Event on the BacklogScaler (what ``kubectl describe`` shows)."""
    now = now_rfc3339()
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "tidegate-scaler"},
        "reportingComponent": "tidegate-scaler",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    await kube.call(
        f"recording an event on {ref.describe}",
        kube.core.create_namespaced_event,
        ref.namespace,
        body,
    )


def watch_changes(
    kube: Kube,
    namespace: str,
    on_change: Callable[[], None],
    stopping: threading.Event,
    timeout_s: int = 30,
) -> None:
    """Call ``on_change`` when a BacklogScaler in ``namespace`` is added,
    deleted or its spec changes (a new generation); status updates are ignored.

    Blocking: runs in a thread of its own until ``stopping`` is set. The
    watch is only a trigger: the controller then lists the resources again,
    which stays the source of truth (a missed event costs one resync period,
    never a wrong state). Each watch request lasts ``timeout_s`` and is
    renewed; errors are logged and retried after a pause.
    """
    seen: dict[str, int] = {}
    while not stopping.is_set():
        w: Any = new_watch()
        try:
            for event in w.stream(
                kube.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                timeout_seconds=timeout_s,
                _request_timeout=timeout_s + 10,
            ):
                if stopping.is_set():
                    w.stop()
                    break
                meta = (event.get("raw_object") or {}).get("metadata") or {}
                uid, generation = str(meta.get("uid", "")), int(meta.get("generation") or 0)
                kind = event.get("type")
                if kind == "DELETED":
                    seen.pop(uid, None)
                elif seen.get(uid) == generation:
                    continue  # a status update, or a re-sent ADDED: nothing to do
                else:
                    seen[uid] = generation
                on_change()
        except Exception as e:  # the watch is an optimization: never fatal
            if stopping.is_set():
                break
            log.warning(
                "watching backlogscalers in %s: %s; retrying (the periodic list goes on)",
                namespace,
                str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
            stopping.wait(WATCH_RETRY_S)
