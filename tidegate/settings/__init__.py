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

Modules: ``base`` (strictness, names, ``host:port``), ``process`` (the
``redis``, ``gateway`` and ``scaler`` sections), ``route`` (a route and its
worker and scaler), ``forwarding`` (what a route's service sees: path, Host,
redirects), ``tenant`` (tenants and quotas), ``model`` (the whole
file), ``loading`` (files, environment, errors). Import from this package.
"""

from __future__ import annotations

from tidegate.settings.base import PRIORITIES, ROUTE_NAME, Priority, checked_name, parse_listen
from tidegate.settings.forwarding import ForwardingSettings, LocationRewrite
from tidegate.settings.loading import load_settings, parse_settings
from tidegate.settings.model import Settings
from tidegate.settings.process import ControllerSettings, GatewaySettings, RedisSettings
from tidegate.settings.route import (
    MAX_PARTITIONS,
    CallbackSettings,
    MatchSettings,
    RouteSettings,
    ScalerSettings,
    TargetSettings,
    ThrottleSettings,
    WorkerSettings,
)
from tidegate.settings.tenant import QuotaSettings, TenantSettings

__all__ = [
    "MAX_PARTITIONS",
    "PRIORITIES",
    "ROUTE_NAME",
    "CallbackSettings",
    "ControllerSettings",
    "ForwardingSettings",
    "GatewaySettings",
    "LocationRewrite",
    "MatchSettings",
    "Priority",
    "QuotaSettings",
    "RedisSettings",
    "RouteSettings",
    "ScalerSettings",
    "Settings",
    "TargetSettings",
    "TenantSettings",
    "ThrottleSettings",
    "WorkerSettings",
    "checked_name",
    "load_settings",
    "parse_listen",
    "parse_settings",
]
