"""The Kubernetes API, as the scaler uses it: one client, calls off the loop,
errors translated for an operator.

The official client is synchronous; every call runs in a worker thread with a
per-call timeout, so a slow API server never blocks sampling of other routes.
An ``ApiException`` becomes a ``KubeError`` carrying the HTTP status, the
API server's own message and, for 429 and 503, the ``Retry-After`` it asked
for; an unreachable server is status 0.

Configuration is loaded the standard way: an explicit kubeconfig path, else
the in-cluster service account, else ``KUBECONFIG`` / ``~/.kube/config``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tidegate.backoff import parse_retry_after
from tidegate.errors import ConfigError, TidegateError

T = TypeVar("T")

# The config loaders carry no type annotations.
load_kube: Callable[..., Any] = config.load_kube_config
load_incluster: Callable[..., Any] = config.load_incluster_config

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeError(TidegateError):
    """A Kubernetes API call failed; ``status`` 0 means the server was not reached."""

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from kubeconfig, in-cluster config, or ``KUBECONFIG``."""
    configuration = client.Configuration()
    # urllib3 would otherwise retry by itself, sleeping out a 429's
    # Retry-After inside the call; the controller does its own backoff.
    configuration.retries = 0
    try:
        if kubeconfig:
            load_kube(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                load_incluster(client_configuration=configuration)
            except ConfigException:
                load_kube(client_configuration=configuration)
        return client.ApiClient(configuration)
    except (ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError) as e:
        where = kubeconfig or "in-cluster config, KUBECONFIG or ~/.kube/config"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError([f"kubernetes: cannot load {where}: {reason}"]) from e


def own_namespace(default: str = "default") -> str:
    """The pod's namespace in a cluster, else ``default``."""
    try:
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or default
    except OSError:
        return default


def _api_message(e: ApiException) -> str:
    try:
        body = json.loads(e.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return str(e.reason or "no reason given")


class Kube:
    """The API groups the scaler needs, over one ApiClient."""

    def __init__(self, api_client: client.ApiClient, timeout_s: float = 5.0) -> None:
        self.api_client = api_client
        self.timeout_s = timeout_s
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a thread; KubeError names ``what`` failed and why."""
        kwargs.setdefault("_request_timeout", self.timeout_s)
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as e:
            retry_after = parse_retry_after((e.headers or {}).get("Retry-After"), time.time())
            raise KubeError(
                f"{what}: {e.status} {_api_message(e)}", int(e.status or 0), retry_after
            ) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(f"{what}: API server unreachable: {e}", 0) from e

    def close(self) -> None:
        closer: Callable[[], None] = self.api_client.close
        closer()
