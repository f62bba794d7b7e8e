"""The sections of the processes: where Redis is, the gateway, the scaler controller."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from tidegate.settings.base import STRICT, parse_listen


@dataclass(frozen=True, config=STRICT)
class RedisSettings:
    """Where Redis is and how long to wait for it."""

    url: str = "redis://127.0.0.1:6379/0"
    """A redis:// or rediss:// URL (database number as the path). In cluster
    mode, any node (a seed: the others are discovered); in sentinel mode, the
    user, password, database and TLS of the master (its address comes from
    the sentinels)."""
    url_file: str | None = None
    """A file holding the URL instead (a mounted Kubernetes Secret), read
    when the config is loaded: the URL, which may hold a password, then
    needs no environment variable. Its content replaces ``url``."""
    mode: Literal["standalone", "cluster", "sentinel"] = "standalone"
    sentinels: tuple[str, ...] = ()
    """Sentinel mode: the sentinels, as ``host:port``."""
    sentinel_master: str = ""
    """Sentinel mode: the name the sentinels know the master by."""
    connect_timeout_s: float = Field(default=1.0, gt=0)
    """How long one connection attempt may take before Redis counts as down."""
    socket_timeout_s: float = Field(default=5.0, gt=0)
    """How long one command may take; blocking reads add their own block time."""
    max_connections: int = Field(default=64, ge=4)
    """Size of each process's connection pool."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("sentinels")
    @classmethod
    def _sentinels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_listen(item)
        return value

    @model_validator(mode="after")
    def _mode(self) -> RedisSettings:
        if self.mode == "sentinel" and not (self.sentinels and self.sentinel_master):
            raise ValueError("sentinel mode needs sentinels (host:port) and sentinel_master")
        if self.mode != "sentinel" and (self.sentinels or self.sentinel_master):
            raise ValueError("sentinels and sentinel_master are for mode: sentinel")
        if self.mode == "cluster" and urlsplit(self.url).path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only: end redis.url in /0")
        if self.mode == "cluster" and self.url.startswith("unix://"):
            raise ValueError("a Redis Cluster is reached over TCP: redis:// or rediss://")
        return self


@dataclass(frozen=True, config=STRICT)
class GatewaySettings:
    """The gateway process: its two ports and its limits."""

    listen: str = "0.0.0.0:8080"
    """Public port: routes and the job API."""
    admin_listen: str = "0.0.0.0:9090"
    """Admin port: /metrics, /healthz, /readyz, /status."""
    max_header_bytes: int = Field(default=16384, ge=1024, le=65536)
    """Total size of a request's header block; above it the answer is 431."""
    drain_delay_s: float = Field(default=5.0, ge=0)
    """On SIGTERM: how long the gateway stays not ready but serving (both
    ports, answers with ``Connection: close``) before it stops accepting, for
    load balancers to take it out of rotation (endpoints take seconds)."""
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    """After the drain delay: how long requests in flight may take to finish
    (a sync wait still running then answers 202; its job stays queued)."""
    batch_max_size: int = Field(default=256, ge=1)
    """Most admissions coalesced into one Redis round trip."""
    redis_retry_after_s: int = Field(default=1, ge=1)
    """Retry-After sent with a 503 while Redis is unreachable."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A request head (request line and headers) must arrive whole within this."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """Longest stall between two chunks of a request body (then 408)."""
    idle_timeout_s: float = Field(default=75.0, gt=0)
    """An idle keep-alive connection is closed after this."""
    status_history_interval_s: float = Field(default=5.0, ge=0.1, le=60)
    """How often the gateway samples every route's figures for the status
    page's 15-minute charts (``/status/history``)."""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of proxies in front of the gateway whose X-Forwarded-* are extended;
    from anyone else those headers are replaced by what the gateway saw."""

    @field_validator("listen", "admin_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _ports(self) -> GatewaySettings:
        (public_host, public_port), (admin_host, admin_port) = (
            parse_listen(self.listen),
            parse_listen(self.admin_listen),
        )
        anywhere = {"0.0.0.0", "::"}
        same_host = public_host == admin_host or bool({public_host, admin_host} & anywhere)
        if public_port == admin_port != 0 and same_host:
            raise ValueError(
                f"listen ({self.listen}) and admin_listen ({self.admin_listen}) are the same "
                "port: the admin port must be a port of its own"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as e:
                raise ValueError(f"{cidr!r} is not an IP network (CIDR): {e}") from None
        return value


@dataclass(frozen=True, config=STRICT)
class ControllerSettings:
    """The scaler process itself (``tidegate scaler``)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces whose BacklogScaler resources are watched (none: config file only)."""
    resync_s: float = Field(default=10.0, gt=0)
    """How often the BacklogScaler resources are listed again."""
    leader_election: bool = True
    lease_name: str = "tidegate-scaler"
    lease_namespace: str | None = None
    """Default: the pod's namespace in a cluster, else ``default``."""
    lease_duration_s: float = Field(default=15.0, gt=0)
    renew_deadline_s: float = Field(default=10.0, gt=0)
    retry_period_s: float = Field(default=2.0, gt=0)
    api_timeout_s: float = Field(default=5.0, gt=0)
    """One Kubernetes API call."""
    shards: int = Field(default=1, ge=1, le=256)
    """Routes are split into this many shards, each led through a Lease of its
    own (``LEASE_NAME-N``): several scaler replicas share the routes, about
    evenly, instead of one leading them all. 1: one Lease, one leader."""
    admin_listen: str = "0.0.0.0:9091"
    """``/metrics``, ``/healthz``, ``/readyz`` of the scaler."""

    @field_validator("admin_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _lease(self) -> ControllerSettings:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("need retry_period_s < renew_deadline_s < lease_duration_s")
        return self
