"""Configuration: one YAML file for every part, parsed into frozen settings.

The file's shape is a contract (operators, the Helm chart and external checks
write it), so parsing is strict: an unknown key or a bad value is an error that
names the field the way an operator would look for it, for example
``routes[0].max_body_bytez: unknown key``. Every duration ends in ``_s`` and
every size in ``_bytes``.

Settings are pydantic dataclasses: frozen, typed, validated once at the edge
(``load_settings``) so that the rest of the code can trust them.

Environment overrides: ``TIDEGATE_<SECTION>_<FIELD>`` for the scalar fields of
the ``redis`` and ``gateway`` sections (for example ``TIDEGATE_REDIS_URL`` or
``TIDEGATE_GATEWAY_LISTEN``). Routes are not overridable from the environment:
a list does not map onto flat variables without surprises.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from tidegate.errors import ConfigError
from tidegate.paths import UnsafePath, canonical_path

_STRICT = ConfigDict(extra="forbid")

ROUTE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$")
RESERVED_PREFIX = "/_tidegate"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ENV_PREFIX = "TIDEGATE_"


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8080`` for IPv6; port 0 picks a free one)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True, config=_STRICT)
class RedisSettings:
    """Where Redis is and how long to wait for it."""

    url: str = "redis://127.0.0.1:6379/0"
    """A redis:// or rediss:// URL (database number as the path)."""
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


@dataclass(frozen=True, config=_STRICT)
class GatewaySettings:
    """The gateway process: its two ports and its limits."""

    listen: str = "0.0.0.0:8080"
    """Public port: routes and the job API."""
    admin_listen: str = "0.0.0.0:9090"
    """Admin port: /metrics, /healthz, /readyz, /status."""
    max_header_bytes: int = Field(default=16384, ge=1024, le=65536)
    """Total size of a request's header block; above it the answer is 431."""
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish."""
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
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of proxies in front of the gateway whose X-Forwarded-* are extended;
    from anyone else those headers are replaced by what the gateway saw."""

    @field_validator("listen", "admin_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as e:
                raise ValueError(f"{cidr!r} is not an IP network (CIDR): {e}") from None
        return value


@dataclass(frozen=True, config=_STRICT)
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


@dataclass(frozen=True, config=_STRICT)
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


@dataclass(frozen=True, config=_STRICT)
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


@dataclass(frozen=True, config=_STRICT)
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


@dataclass(frozen=True, config=_STRICT)
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
    throttle: ThrottleSettings = ThrottleSettings()

    @model_validator(mode="after")
    def _bounds(self) -> ScalerSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self


@dataclass(frozen=True, config=_STRICT)
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


def checked_name(value: str) -> str:
    """Route and tenant names: they become parts of Redis keys."""
    if not ROUTE_NAME.match(value):
        raise ValueError("must be 1-48 characters of [a-z0-9-], not starting or ending in -")
    return value


Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[str, ...] = ("high", "normal", "low")


@dataclass(frozen=True, config=_STRICT)
class QuotaSettings:
    """A tenant's own token bucket, per route, always enforced."""

    rate_per_s: float = Field(gt=0)
    burst: int = Field(default=0, ge=0)
    """Requests allowed at once beyond the rate (default: one second of it)."""

    @property
    def bucket_size(self) -> int:
        """The bucket's capacity: ``burst``, or one second of the rate (at least 1)."""
        return self.burst or max(1, round(self.rate_per_s))


@dataclass(frozen=True, config=_STRICT)
class TenantSettings:
    """A client of the gateway, known by its API key (stored hashed)."""

    name: str
    api_key_sha256: str
    """Hex SHA-256 of the key (``printf %s KEY | sha256sum``); the key itself is never stored."""
    weight: float = Field(default=1.0, gt=0)
    """Share of a throttled route's rate, relative to the other active tenants."""
    quota: QuotaSettings | None = None
    priority: Priority = "normal"
    """Highest class this tenant's requests get (a request may ask for a lower one)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("api_key_sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 lowercase hex characters (a SHA-256 digest)")
        return value


@dataclass(frozen=True, config=_STRICT)
class RouteSettings:
    """One route: what it matches and how its requests are handled."""

    name: str
    """Unique, [a-z0-9-]; part of every Redis key of the route."""
    match: MatchSettings
    mode: Literal["sync", "async", "proxy"] = "sync"
    """sync: wait for the result, then 202; async: 202 at once; proxy: no queue."""
    upstream: str | None = None
    """proxy mode only: where requests are forwarded."""
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
    worker: WorkerSettings = WorkerSettings()
    scaler: ScalerSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_name(value)

    @model_validator(mode="after")
    def _mode(self) -> RouteSettings:
        if self.mode == "proxy" and not self.upstream:
            raise ValueError("a proxy route needs an upstream")
        if self.mode != "proxy" and self.upstream:
            raise ValueError("upstream is for proxy routes; queued routes name it on the worker")
        return self


@dataclass(frozen=True, config=_STRICT)
class Settings:
    """The whole file."""

    redis: RedisSettings = RedisSettings()
    gateway: GatewaySettings = GatewaySettings()
    scaler: ControllerSettings = ControllerSettings()
    tenants: tuple[TenantSettings, ...] = ()
    """API keys -> tenants; when any are set, every public request needs a key."""
    tenants_file: str | None = None
    """A YAML file holding the tenants list instead (mounted from a Secret)."""
    routes: tuple[RouteSettings, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"route name {route.name!r} is used twice")
            seen.add(route.name)
        names = [t.name for t in self.tenants]
        digests = [t.api_key_sha256 for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("a tenant name is used twice")
        if len(set(digests)) != len(digests):
            raise ValueError("two tenants share an API key")
        return self

    def route(self, name: str) -> RouteSettings:
        """The route called ``name``; ConfigError naming the known ones if absent."""
        for route in self.routes:
            if route.name == name:
                return route
        known = ", ".join(r.name for r in self.routes) or "none"
        raise ConfigError([f"--route {name}: no such route (configured: {known})"])


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    sections = (
        ("redis", RedisSettings),
        ("gateway", GatewaySettings),
        ("scaler", ControllerSettings),
    )
    for section, cls in sections:
        for f in fields(cls):
            value = env.get(f"{ENV_PREFIX}{section}_{f.name}".upper())
            if value is not None:
                out.setdefault(section, {})[f.name] = value
    return out


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "__root__":
            text += f".{part}" if text else str(part)
    return text or "(top level)"


_MESSAGES = {
    "unexpected_keyword_argument": "unknown key",
    "missing_argument": "required",
    "missing": "required",
}


def _messages(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        message = _MESSAGES.get(item["type"], item["msg"])
        message = message.removeprefix("Value error, ")
        lines.append(f"{_location(tuple(item['loc']))}: {message}")
    return lines


def parse_settings(raw: Any, env: Mapping[str, str] | None = None) -> Settings:
    """Validate a parsed YAML document (plus environment overrides)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a mapping of sections"])
    merged: dict[str, Any] = dict(raw)
    for section, values in _env_overrides(os.environ if env is None else env).items():
        current = merged.get(section) or {}
        if not isinstance(current, dict):
            raise ConfigError([f"{section}: expected a mapping"])
        merged[section] = {**current, **values}
    try:
        return Settings(**merged)
    except ValidationError as e:
        raise ConfigError(_messages(e)) from e
    except TypeError as e:  # a section given as a list or scalar
        raise ConfigError([f"(top level): {e}"]) from e


def load_settings(
    path: str | Path, env: Mapping[str, str] | None = None, *, tenants: bool = True
) -> Settings:
    """Read, parse and validate a config file; ConfigError says what is wrong.

    ``tenants_file`` (or ``TIDEGATE_TENANTS_FILE``) names a second YAML file,
    a list of tenants, read here: in Kubernetes the tenants come from a Secret
    while the rest of the config is a ConfigMap. Parts that do not serve
    clients (worker, scaler) pass ``tenants=False`` and need no such file.
    """
    raw = _read_yaml(path)
    environ = os.environ if env is None else env
    if isinstance(raw, dict) and tenants:
        tenants_file = environ.get(f"{ENV_PREFIX}TENANTS_FILE".upper()) or raw.get("tenants_file")
        if tenants_file:
            if raw.get("tenants"):
                raise ConfigError(["tenants: give tenants or tenants_file, not both"])
            tenants = _read_yaml(tenants_file)
            if isinstance(tenants, dict):
                tenants = tenants.get("tenants")
            if not isinstance(tenants, list):
                raise ConfigError([f"{tenants_file}: expected a list of tenants"])
            raw = {**raw, "tenants": tenants, "tenants_file": str(tenants_file)}
    return parse_settings(raw, env)


def _read_yaml(path: str | Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML: {e}"]) from e
