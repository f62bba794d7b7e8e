"""The whole configuration file, one frozen Settings."""

from __future__ import annotations

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from tidegate.errors import ConfigError
from tidegate.settings.base import STRICT
from tidegate.settings.process import ControllerSettings, GatewaySettings, RedisSettings
from tidegate.settings.route import (
    RouteSettings,
)
from tidegate.settings.tenant import TenantSettings


@dataclass(frozen=True, config=STRICT)
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
