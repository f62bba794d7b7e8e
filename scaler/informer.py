"""The Deployments of a namespace, kept current by list + watch (an informer).

Without it each route loop GETs its Deployment every tick: with hundreds of
routes that is most of the scaler's CPU (``bench/scaler_routes.py``). One
cache per watched namespace instead lists the Deployments once, then follows
a watch from the list's resourceVersion, as client-go's informers do:

- ADDED and MODIFIED events replace the object, DELETED removes it;
- a watch that ends (its ``timeoutSeconds``) is renewed from the last
  resourceVersion seen, so nothing is missed in between;
- 410 Gone (the resourceVersion was compacted away) lists again at once; any
  other failure lists again after a pause that doubles (2 s to 60 s) while
  failures go on. Until a list succeeds the cache is not ``synced`` and
  readers fall back to a GET of their own, so a broken watch (or RBAC
  without ``list``/``watch`` on deployments) costs speed, never correctness.

The loop blocks on HTTP reads, so it runs in a thread of its own; readers on
the event loop take a snapshot under a lock.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from scaler.actuator import Replicas
from scaler.kube import Kube
from scaler.resources import new_watch

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 30
RETRY_S = 2.0
RETRY_MAX_S = 60.0
"""Failures in a row wait longer, up to this (a 403 stays a 403)."""


@dataclass(frozen=True)
class Cached:
    replicas: Replicas
    selector: dict[str, str] | None


def cached(deployment: Any) -> Cached:
    """The parts of a Deployment the scaler reads (from the client's model)."""
    spec, status = deployment.spec, deployment.status
    labels = (spec.selector and spec.selector.match_labels) or {}
    return Cached(
        Replicas(
            desired=int(spec.replicas if spec.replicas is not None else 1),
            current=int((status and status.replicas) or 0),
            ready=int((status and status.ready_replicas) or 0),
        ),
        dict(labels) or None,
    )


class DeploymentCache:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._lock = threading.Lock()
        self._objects: dict[str, Cached] = {}
        self._synced = False
        self.lists = 0
        """Lists so far (the first, then one per 410 or failure)."""

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._synced

    def get(self, name: str) -> Cached | None:
        """The Deployment as last seen; None when there is none (meaningful
        only while ``synced``)."""
        with self._lock:
            return self._objects.get(name)

    def asked(self, name: str, replicas: int) -> None:
        """A scale write went through: show it before the watch brings it."""
        with self._lock:
            found = self._objects.get(name)
            if found is not None:
                seen = found.replicas
                self._objects[name] = Cached(
                    Replicas(replicas, seen.current, seen.ready), found.selector
                )

    def run(self, stopping: threading.Event) -> None:
        """List, then watch; again after 410 Gone or a failure. Blocking."""
        delay_s = RETRY_S
        while not stopping.is_set():
            try:
                version = self._list()
                delay_s = RETRY_S
                while not stopping.is_set():
                    version = self._watch(version, stopping)
            except Exception as e:
                with self._lock:
                    self._synced = False
                if stopping.is_set():
                    break
                gone = isinstance(e, ApiException) and e.status == 410
                if gone:
                    log.info(
                        "deployments in %s: watch expired (410); listing again", self.namespace
                    )
                else:
                    first = str(e).splitlines()[0] if str(e) else type(e).__name__
                    log.warning(
                        "deployments in %s: %s; listing again in %.0f s (reads fall back to GET)",
                        self.namespace,
                        first,
                        delay_s,
                    )
                    stopping.wait(delay_s)
                    delay_s = min(delay_s * 2, RETRY_MAX_S)

    def _list(self) -> str:
        listed: Any = self.kube.apps.list_namespaced_deployment(
            self.namespace, _request_timeout=self.kube.timeout_s
        )
        objects = {d.metadata.name: cached(d) for d in listed.items}
        with self._lock:
            self._objects, self._synced = objects, True
            self.lists += 1
        return str(listed.metadata.resource_version)

    def _watch(self, version: str, stopping: threading.Event) -> str:
        """One watch request from ``version``; the last version seen."""
        w: Any = new_watch()
        for event in w.stream(
            self.kube.apps.list_namespaced_deployment,
            self.namespace,
            resource_version=version,
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=WATCH_TIMEOUT_S + 10,
        ):
            if stopping.is_set():
                w.stop()
                break
            obj = event["object"]
            version = str(obj.metadata.resource_version)
            with self._lock:
                if event["type"] == "DELETED":
                    self._objects.pop(obj.metadata.name, None)
                else:
                    self._objects[obj.metadata.name] = cached(obj)
        return version
