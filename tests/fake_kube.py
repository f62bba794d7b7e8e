"""A fake Kubernetes API server for the scaler's tests.

It serves the real REST paths the scaler uses, over HTTP, so the official
``kubernetes`` client talks to it through an ordinary kubeconfig:

- ``apps/v1`` deployments (get, list, watch from a resourceVersion; a
  compacted one is 410 Gone, ``expire_watches``) and their ``/scale``
  subresource (get, replace, merge patch);
- ``coordination.k8s.io/v1`` leases (get, create, replace);
- ``tidegate.io/v1alpha1`` backlogscalers (list, watch, get) and their
  ``/status`` subresource (merge patch, replace);
- core ``v1`` events (create) and pods (list by label selector, merge patch);
  a Deployment's pods follow its replicas, and a scale-in removes them the
  way a ReplicaSet does: the lowest ``controller.kubernetes.io/pod-deletion-cost``
  first, then the newest (``deleted_pods`` records which, in order).

With the semantics the scaler must cope with: every object has a
resourceVersion and a replace carrying a stale one is 409 Conflict; a missing
object is 404; a create of an existing one is 409 AlreadyExists; a request
without a bearer token is 401. Faults are injected per method and path:
``fail(...)`` answers a status (403, 429 with Retry-After, 500...) a number of
times; ``conflict_scale_writes(n)`` makes the next n scale replaces lose a
race with "another writer". A Deployment's status follows its spec at once
(``ready_cap`` holds ready replicas down, as unschedulable pods would).
Every request is recorded, with the monotonic time it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "fake-token"

NS = r"(?P<ns>[a-z0-9-]+)"
NAME = r"(?P<name>[a-z0-9.-]+)"
DEPLOYMENT = re.compile(rf"^/apis/apps/v1/namespaces/{NS}/deployments/{NAME}(?P<sub>/scale)?$")
DEPLOYMENTS = re.compile(rf"^/apis/apps/v1/namespaces/{NS}/deployments$")
LEASES = re.compile(rf"^/apis/coordination.k8s.io/v1/namespaces/{NS}/leases(/{NAME})?$")
SCALERS = re.compile(
    rf"^/apis/tidegate.io/v1alpha1/namespaces/{NS}/backlogscalers(/{NAME}(?P<sub>/status)?)?$"
)
EVENTS = re.compile(rf"^/api/v1/namespaces/{NS}/events$")
PODS = re.compile(rf"^/api/v1/namespaces/{NS}/pods(/{NAME})?$")
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after_s: int | None = None


@dataclass
class Request:
    method: str
    path: str
    body: Any
    at_s: float


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


@dataclass
class FakeKube:
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    scalers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deleted_pods: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    ready_cap: dict[tuple[str, str], int] = field(default_factory=dict)
    scale_conflicts: int = 0
    url: str = ""
    _watchers: list[tuple[str, str, asyncio.Queue[tuple[str, Any]]]] = field(default_factory=list)
    """Open watches: (kind, namespace, queue of events)."""
    gone_below: int = 0
    """A deployments watch from a resourceVersion below this is 410 Gone
    (``expire_watches``), as when etcd has compacted it away."""
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _runner: web.AppRunner | None = None

    # ---- setting up -------------------------------------------------------

    def _rv(self) -> str:
        return str(next(self._versions))

    def _meta(self, ns: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}-{self._rv()}",
            "resourceVersion": self._rv(),
            "generation": 1,
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def add_deployment(self, ns: str, name: str, replicas: int = 1) -> None:
        labels = {"app": name}
        self.deployments[(ns, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self._meta(ns, name),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "worker", "image": "tidegate"}]},
                },
            },
            "status": {},
        }
        self._settle(ns, name)

    def _settle(self, ns: str, name: str) -> None:
        d = self.deployments[(ns, name)]
        want = d["spec"]["replicas"]
        self._replica_set(ns, name, want)
        ready = min(want, self.ready_cap.get((ns, name), want))
        d["status"] = {"replicas": want, "readyReplicas": ready, "availableReplicas": ready}
        d["metadata"]["resourceVersion"] = self._rv()
        self._notify("MODIFIED", d)  # a watch sees every change of spec or status

    def remove_deployment(self, ns: str, name: str) -> None:
        self._replica_set(ns, name, 0)
        self._notify("DELETED", self.deployments.pop((ns, name)))

    def _replica_set(self, ns: str, name: str, want: int) -> None:
        """Pods follow the replicas; scale-in removes the cheapest, then the newest."""
        mine = [(k, p) for k, p in self.pods.items() if k[0] == ns and p["owner"] == name]
        for _ in range(want - len(mine)):
            pod_name = f"{name}-{next(self._versions)}"
            self.pods[(ns, pod_name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    **self._meta(ns, pod_name),
                    "labels": {"app": name},
                    "annotations": {},
                },
                "owner": name,
                "born": next(self._versions),
            }
        if len(mine) > want:

            def rank(item: tuple[tuple[str, str], dict[str, Any]]) -> tuple[int, int]:
                pod = item[1]
                cost = int(pod["metadata"]["annotations"].get(DELETION_COST, "0"))
                return (cost, -pod["born"])

            for key, _ in sorted(mine, key=rank)[: len(mine) - want]:
                self.deleted_pods.append(key[1])
                del self.pods[key]

    def pod_names(self, ns: str, name: str) -> set[str]:
        return {k[1] for k, p in self.pods.items() if k[0] == ns and p["owner"] == name}

    def replicas(self, ns: str, name: str) -> int:
        return int(self.deployments[(ns, name)]["spec"]["replicas"])

    def add_scaler(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.scalers[(ns, name)] = {
            "apiVersion": "tidegate.io/v1alpha1",
            "kind": "BacklogScaler",
            "metadata": self._meta(ns, name),
            "spec": spec,
        }
        self._notify("ADDED", self.scalers[(ns, name)])

    def update_scaler_spec(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        obj = self.scalers[(ns, name)]
        obj["spec"] = spec
        obj["metadata"]["generation"] += 1
        obj["metadata"]["resourceVersion"] = self._rv()
        self._notify("MODIFIED", obj)

    def delete_scaler(self, ns: str, name: str) -> None:
        self._notify("DELETED", self.scalers.pop((ns, name)))

    def _notify(self, kind: str, obj: dict[str, Any]) -> None:
        ns, of = obj["metadata"]["namespace"], obj["kind"]
        for watched_kind, watched, queue in self._watchers:
            if watched == ns and watched_kind == of:
                queue.put_nowait((kind, copy.deepcopy(obj)))

    def expire_watches(self) -> None:
        """Every deployments resourceVersion seen so far is compacted: a watch
        from one is 410 Gone, and open watches end with that error."""
        self.gone_below = int(self._rv())
        for kind, _, queue in self._watchers:
            if kind == "Deployment":
                queue.put_nowait(("GONE", None))

    async def _watch(
        self, request: web.Request, ns: str, of: str = "BacklogScaler"
    ) -> web.StreamResponse:
        """A watch: the existing objects as ADDED (for a deployments watch: only
        changes after the resourceVersion asked for), then changes, for
        timeoutSeconds; a resourceVersion compacted away is 410 Gone."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        entry = (of, ns, queue)
        self._watchers.append(entry)
        try:
            since = request.query.get("resourceVersion")
            if of == "Deployment" and since and int(since) < self.gone_below:
                queue.put_nowait(("GONE", None))
            store = self.scalers if of == "BacklogScaler" else self.deployments
            for (n, _), obj in list(store.items()):
                fresh = since is None or int(obj["metadata"]["resourceVersion"]) > int(since)
                if n == ns and (of == "BacklogScaler" or fresh):
                    queue.put_nowait(("ADDED" if since is None else "MODIFIED", copy.deepcopy(obj)))
            deadline = time.monotonic() + float(request.query.get("timeoutSeconds", "30"))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    kind, obj = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if kind == "STOP":
                    break
                if kind == "GONE":
                    gone = status_body(410, "Expired", "too old resource version")
                    await response.write(
                        (json.dumps({"type": "ERROR", "object": gone}) + "\n").encode()
                    )
                    break
                line = json.dumps({"type": kind, "object": obj}) + "\n"
                await response.write(line.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.remove(entry)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        retry_after_s: int | None = None,
    ) -> None:
        self.faults.append(Fault(method, re.compile(path), status, times, retry_after_s))

    def conflict_scale_writes(self, n: int) -> None:
        self.scale_conflicts = n

    def scale_writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("PUT", "PATCH") and "/scale" in r.path]

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "scaler", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "scaler"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # ---- serving ----------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for _, _, queue in self._watchers:  # end open watches now, not at their timeout
            queue.put_nowait(("STOP", None))
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(Request(request.method, request.path, body, time.monotonic()))
        try:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            for fault in self.faults:
                hit = fault.method == request.method and fault.path.search(request.path)
                if fault.times > 0 and hit:
                    fault.times -= 1
                    headers = {}
                    if fault.retry_after_s is not None:
                        headers["Retry-After"] = str(fault.retry_after_s)
                    reason = {403: "Forbidden", 429: "TooManyRequests"}.get(
                        fault.status, "InternalError"
                    )
                    return web.json_response(
                        status_body(fault.status, reason, f"injected {fault.status}"),
                        status=fault.status,
                        headers=headers,
                    )
            if request.method == "GET" and request.query.get("watch") in ("true", "1"):
                m = SCALERS.match(request.path)
                if m and m["name"] is None:
                    return await self._watch(request, m["ns"])
                if m := DEPLOYMENTS.match(request.path):
                    return await self._watch(request, m["ns"], "Deployment")
            if request.method == "GET" and (m := DEPLOYMENTS.match(request.path)):
                items = [v for (ns, _), v in sorted(self.deployments.items()) if ns == m["ns"]]
                return web.json_response(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DeploymentList",
                        "metadata": {"resourceVersion": self._rv()},
                        "items": items,
                    }
                )
            if m := PODS.match(request.path):
                return web.json_response(self._pods(request, m["ns"], m["name"], body))
            return web.json_response(self._route(request.method, request.path, body))
        except ApiError as e:
            return web.json_response(status_body(e.code, e.reason, e.message), status=e.code)

    def _route(self, method: str, path: str, body: Any) -> Any:
        if m := DEPLOYMENT.match(path):
            return self._deployment(method, m["ns"], m["name"], bool(m["sub"]), body)
        if m := LEASES.match(path):
            return self._object(self.leases, "Lease", method, m["ns"], m["name"], body)
        if m := SCALERS.match(path):
            if m["name"] is None:
                if method != "GET":
                    raise ApiError(405, "MethodNotAllowed", method)
                items = [v for (ns, _), v in self.scalers.items() if ns == m["ns"]]
                return {
                    "apiVersion": "tidegate.io/v1alpha1",
                    "kind": "BacklogScalerList",
                    "metadata": {"resourceVersion": self._rv()},
                    "items": items,
                }
            if m["sub"]:
                return self._status(method, m["ns"], m["name"], body)
            return self._object(self.scalers, "BacklogScaler", method, m["ns"], m["name"], body)
        if m := EVENTS.match(path):
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", method)
            event = dict(body)
            meta = dict(event.get("metadata") or {})
            meta["name"] = meta.get("generateName", "event.") + self._rv()
            event["metadata"] = meta
            self.events.append(event)
            return event
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")

    def _pods(self, request: web.Request, ns: str, name: str | None, body: Any) -> Any:
        def shown(pod: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in pod.items() if k not in ("owner", "born")}

        if name is None:
            if request.method != "GET":
                raise ApiError(405, "MethodNotAllowed", request.method)
            wanted = dict(
                pair.split("=", 1)
                for pair in request.query.get("labelSelector", "").split(",")
                if pair
            )
            items = [
                shown(p)
                for (n, _), p in sorted(self.pods.items())
                if n == ns and wanted.items() <= p["metadata"]["labels"].items()
            ]
            return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
        pod = self._get(self.pods, "Pod", ns, name)
        if request.method == "PATCH":
            kind = request.headers.get("Content-Type", "")
            if "merge-patch" not in kind:  # merge or strategic merge: both apply here
                raise ApiError(415, "UnsupportedMediaType", kind)
            pod["metadata"] = merge_patch(pod["metadata"], body.get("metadata") or {})
            pod["metadata"]["resourceVersion"] = self._rv()
        elif request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", request.method)
        return shown(pod)

    def _get(self, store: dict[tuple[str, str], Any], kind: str, ns: str, name: str) -> Any:
        obj = store.get((ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{kind.lower()}s "{name}" not found')
        return obj

    def _check_version(self, current: Any, body: Any, kind: str, name: str) -> None:
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent is not None and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.lower()}s "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )

    def _object(
        self,
        store: dict[tuple[str, str], Any],
        kind: str,
        method: str,
        ns: str,
        name: str | None,
        body: Any,
    ) -> Any:
        if method == "POST" and name is None:
            name = body["metadata"]["name"]
            if (ns, name) in store:
                raise ApiError(409, "AlreadyExists", f'{kind.lower()}s "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"] = {**self._meta(ns, name), **{"labels": body["metadata"].get("labels")}}
            store[(ns, name)] = obj
            return obj
        if name is None:
            raise ApiError(405, "MethodNotAllowed", method)
        current = self._get(store, kind, ns, name)
        if method == "GET":
            return current
        if method == "PUT":
            self._check_version(current, body, kind, name)
            obj = copy.deepcopy(body)
            obj["metadata"] = {**current["metadata"], "resourceVersion": self._rv()}
            if "status" in current and kind == "BacklogScaler":
                obj["status"] = current["status"]
            store[(ns, name)] = obj
            return obj
        raise ApiError(405, "MethodNotAllowed", method)

    def _status(self, method: str, ns: str, name: str, body: Any) -> Any:
        current = self._get(self.scalers, "BacklogScaler", ns, name)
        if method == "GET":
            return current
        if method == "PATCH":
            current["status"] = merge_patch(current.get("status") or {}, body.get("status") or {})
        elif method == "PUT":
            self._check_version(current, body, "BacklogScaler", name)
            current["status"] = body.get("status")
        else:
            raise ApiError(405, "MethodNotAllowed", method)
        current["metadata"]["resourceVersion"] = self._rv()
        self._notify("MODIFIED", current)
        return current

    def _deployment(self, method: str, ns: str, name: str, scale: bool, body: Any) -> Any:
        d = self._get(self.deployments, "Deployment", ns, name)
        if not scale:
            if method != "GET":
                raise ApiError(403, "Forbidden", "the scaler may not write whole deployments")
            return d
        if method in ("PUT", "PATCH"):
            if method == "PUT":
                if self.scale_conflicts > 0:  # another writer got there first
                    self.scale_conflicts -= 1
                    d["metadata"]["resourceVersion"] = self._rv()
                self._check_version(d, body, "Deployment", name)
            replicas = int(body["spec"]["replicas"])
            if replicas < 0:
                raise ApiError(422, "Invalid", "spec.replicas: must be >= 0")
            d["spec"]["replicas"] = replicas
            d["metadata"]["resourceVersion"] = self._rv()
            d["metadata"]["generation"] += 1
            self._settle(ns, name)
        elif method != "GET":
            raise ApiError(405, "MethodNotAllowed", method)
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": name,
                "namespace": ns,
                "resourceVersion": d["metadata"]["resourceVersion"],
                "uid": d["metadata"]["uid"],
            },
            "spec": {"replicas": d["spec"]["replicas"]},
            "status": {"replicas": d["status"]["replicas"], "selector": f"app={name}"},
        }
