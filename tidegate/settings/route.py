"""A route: what it matches, how it is served, its worker and its scaler."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from tidegate import webhooks
from tidegate.callback_urls import checked_prefixes
from tidegate.errors import ConfigError
from tidegate.http import upstream_parts
from tidegate.paths import UnsafePath, canonical_path
from tidegate.settings.base import (
    HTTP_METHODS,
    RESERVED_PREFIX,
    STRICT,
    Priority,
    checked_name,
)
from tidegate.settings.forwarding import ForwardingSettings

MAX_PARTITIONS = 256


@dataclass(frozen=True, config=STRICT)
class MatchSettings:
    """Which requests a route takes."""

    path_prefix: str
    """Requests whose path starts with this (on a segment boundary)."""
    methods: tuple[str, ...] = ("POST", "PUT", "PATCH", "DELETE")
    """HTTP methods the route takes; others fall through to later routes."""

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        if value.rstrip("/").startswith(RESERVED_PREFIX):
            raise ValueError(f"{RESERVED_PREFIX}/ is reserved for the job API")
        try:
            canonical = canonical_path(value)
        except UnsafePath as e:
            raise ValueError(f"a prefix may not hold {e}") from None
        if canonical != value:
            raise ValueError(f"write it in canonical form: {canonical}")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        unknown = sorted(set(upper) - HTTP_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP method(s) {', '.join(unknown)}")
        if not upper:
            raise ValueError("must name at least one method")
        return upper


@dataclass(frozen=True, config=STRICT)
class WorkerSettings:
    """How a route's workers process its jobs."""

    max_attempts: int = Field(default=5, ge=1)
    """Attempts before a job finally fails."""
    visibility_timeout_s: float = Field(default=30.0, gt=0)
    """An entry idle this long in a consumer is considered abandoned."""
    timeout_s: float = Field(default=10.0, gt=0)
    """One upstream call."""
    compensate_path: str | None = None
    """Path called on the upstream when a job finally fails."""
    concurrency: int = Field(default=16, ge=1, le=10000)
    """Jobs one worker process runs at once."""
    backoff_base_s: float = Field(default=0.5, gt=0)
    """Delay before the first retry; doubles per attempt (with jitter)."""
    dead_letter_retention_s: float = Field(default=7 * 86400.0, gt=0)
    """How long dead letters stay for inspection (never trimmed before compensated)."""
    backoff_max_s: float = Field(default=60.0, gt=0)
    """Longest delay between two attempts (an upstream's Retry-After may ask more)."""
    on_deadline: Literal["expire", "requeue"] = "expire"
    """What the reconciler does with a job past ``deadline_s`` without an end."""
    max_requeues: int = Field(default=3, ge=1)
    """With ``on_deadline: requeue``: new deadlines a job gets before it expires."""
    max_result_bytes: int = Field(default=1048576, ge=0, le=64 * 1048576)
    """A larger upstream answer fails the job (502, no retry); it is never stored whole."""


@dataclass(frozen=True, config=STRICT)
class CallbackSettings:
    """Completion callbacks a client may ask for (``Tidegate-Callback: URL``)."""

    allow: tuple[str, ...] = Field(min_length=1)
    """URL prefixes a client may name; nothing else is ever called. With
    tenants, a URL must also lie under the tenant's own ``callback_allow``."""
    secret: str | None = Field(default=None, repr=False)
    """The Standard Webhooks signing secret, ``whsec_`` + base64 of 24-64 bytes."""
    secret_file: str | None = None
    """A file holding the secret instead (mounted from a Kubernetes Secret);
    read where callbacks are sent (the workers), not where they are asked for."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    """One delivery attempt, connecting included."""
    give_up_after_s: float = Field(default=3600.0, gt=0)
    """Retries stop this long after the job ended; ``callback_failed`` is recorded."""
    backoff_max_s: float = Field(default=300.0, gt=0)
    """Longest delay between two attempts (from 1 s, doubling, with jitter)."""

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return checked_prefixes(value)

    @model_validator(mode="after")
    def _secret(self) -> CallbackSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret or secret_file")
        if self.secret is not None:
            webhooks.secret_key(self.secret)  # ValueError naming what is wrong, never the value
        return self

    @property
    def key(self) -> bytes:
        """The HMAC key the callbacks are signed with; ConfigError when the
        secret file cannot be read or does not hold a valid secret."""
        if self.secret is not None:
            return webhooks.secret_key(self.secret)
        assert self.secret_file is not None
        try:
            secret = Path(self.secret_file).read_text(encoding="utf-8").strip()
            return webhooks.secret_key(secret)
        except OSError as e:
            why = f"cannot read: {e.strerror}"
        except ValueError as e:
            why = str(e)
        raise ConfigError([f"callback.secret_file {self.secret_file}: {why}"])


@dataclass(frozen=True, config=STRICT)
class TargetSettings:
    """What the scaler scales for a route."""

    kind: Literal["deployment", "local"]
    namespace: str | None = None
    name: str | None = None
    upstream: str | None = None
    app: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> TargetSettings:
        if self.kind == "deployment" and not (self.namespace and self.name):
            raise ValueError("a deployment target needs namespace and name")
        if self.kind == "local" and bool(self.upstream) == bool(self.app):
            raise ValueError("a local target needs exactly one of upstream or app")
        return self


@dataclass(frozen=True, config=STRICT)
class ThrottleSettings:
    """Front-door throttling once scaling is exhausted."""

    enabled: bool = True
    status: Literal[429, 503] = 429
    """Status of a throttled answer."""
    burst_s: float = Field(default=2.0, ge=0)
    """Burst allowance, in seconds of the throttle rate."""
    margin: float = Field(default=0.1, ge=0, lt=1)
    """The rate is the measured drain capacity times (1 - margin): the backlog shrinks."""
    min_rate_per_s: float = Field(default=1.0, gt=0)
    """Never throttle below this many admissions per second."""
    ready_grace_s: float = Field(default=30.0, ge=0)
    """Replicas asked for but not ready this long count as scaling exhausted."""
    low_water_s: float = Field(default=5.0, ge=0)
    """Lifting needs a backlog that drains within this many seconds ..."""
    hold_s: float = Field(default=30.0, ge=0)
    """... for this long, with the needed replicas back within max_replicas."""


@dataclass(frozen=True, config=STRICT)
class ScalerSettings:
    """Autoscaling of a route's workers."""

    target: TargetSettings
    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    drain_target_s: float = Field(default=30.0, gt=0)
    scale_down_window_s: float = Field(default=60.0, ge=0)
    interval_s: float = Field(default=1.0, gt=0)
    """How often the route is sampled and a decision taken."""
    lag_per_replica: int = Field(default=100, ge=1)
    """Backlog per replica, used until the per-replica service rate is learned."""
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    """Relative reductions this small are not made (against flapping)."""
    activation_backlog: int = Field(default=0, ge=0)
    """Backlog above which a route at zero replicas gets its first one."""
    fallback_replicas: int | None = Field(default=None, ge=0)
    """Replicas to set after ``failures_before_fallback`` failed measurements
    in a row (default: hold the current ones)."""
    failures_before_fallback: int = Field(default=3, ge=1)
    predict: Literal["off", "periodic"] = "off"
    """periodic: learn a repeating arrival pattern from the route's history and
    scale ahead of it by the pods' start-up time (reactive when it breaks)."""
    throttle: ThrottleSettings = ThrottleSettings()

    @model_validator(mode="after")
    def _bounds(self) -> ScalerSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self


@dataclass(frozen=True, config=STRICT)
class RouteSettings:
    """One route: what it matches and how its requests are handled."""

    name: str
    """Unique, [a-z0-9-]; part of every Redis key of the route."""
    match: MatchSettings
    mode: Literal["sync", "async", "proxy"] = "sync"
    """sync: wait for the result, then 202; async: 202 at once; proxy: no queue."""
    upstream: str | None = None
    """proxy mode only: where requests are forwarded."""
    forwarding: ForwardingSettings = ForwardingSettings()
    """What the service sees of the request (path, Host) and the client of
    its redirects (``tidegate.settings.forwarding``)."""
    wait_s: float = Field(default=10.0, ge=0, le=300)
    """How long a sync request waits for its result before it gets 202."""
    max_body_bytes: int = Field(default=1048576, ge=0, le=64 * 1048576)
    result_ttl_s: int = Field(default=3600, ge=1)
    """How long results, finished job states and idempotency keys are kept."""
    deadline_s: float = Field(default=600.0, gt=0)
    """A job not finished this long after it was accepted is overdue."""
    priority: Priority = "normal"
    """Class of the route's requests while throttled: lower classes are refused first."""
    replicas_ack: int = Field(default=0, ge=0)
    """Redis replicas that must hold an admitted job before the client is answered
    (WAIT); fewer within replicas_ack_timeout_s is a 503."""
    replicas_ack_timeout_s: float = Field(default=0.5, gt=0)
    partitions: int = Field(default=1, ge=1, le=MAX_PARTITIONS)
    """The route's stream split over this many hash tags (Cluster slots), so one
    busy route can use every shard; no order holds across partitions."""
    worker: WorkerSettings = WorkerSettings()
    callback: CallbackSettings | None = None
    """Completion callbacks; absent: a ``Tidegate-Callback`` header is refused."""
    scaler: ScalerSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str | None) -> str | None:
        if value is not None:
            upstream_parts(value)
        return value

    @model_validator(mode="after")
    def _mode(self) -> RouteSettings:
        if self.mode == "proxy" and not self.upstream:
            raise ValueError("a proxy route needs an upstream")
        if self.mode != "proxy" and self.upstream:
            raise ValueError("upstream is for proxy routes; queued routes name it on the worker")
        if self.mode == "proxy" and self.partitions != 1:
            raise ValueError("partitions are for queued routes; a proxy route has no stream")
        if self.mode == "proxy" and self.callback:
            raise ValueError("callbacks are for queued routes; a proxy route has no jobs")
        if self.callback and self.callback.give_up_after_s > self.result_ttl_s:
            raise ValueError(
                "callback.give_up_after_s is above result_ttl_s: the job would be gone "
                "before its callback gives up"
            )
        return self
