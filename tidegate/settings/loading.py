"""Reading the file: environment overrides, the tenants file, errors named for operators."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tidegate.errors import ConfigError
from tidegate.settings.base import ENV_PREFIX
from tidegate.settings.model import Settings
from tidegate.settings.process import ControllerSettings, GatewaySettings, RedisSettings

_SECTIONS = (
    ("redis", RedisSettings),
    ("gateway", GatewaySettings),
    ("scaler", ControllerSettings),
)

OTHER_VARIABLES = ("CONFIG", "LOG_LEVEL", "LOG_FORMAT", "EVENT_LOOP", "TENANTS_FILE",
                   "REDIS_SERVER")  # fmt: skip
"""The ``TIDEGATE_*`` variables that are not a section's field: the config
path, logging, the event loop, the tenants file, the demo's server binary."""


def known_variables() -> list[str]:
    """Every ``TIDEGATE_*`` environment variable tidegate reads."""
    names = [f"{ENV_PREFIX}{name}" for name in OTHER_VARIABLES]
    for section, cls in _SECTIONS:
        names += [f"{ENV_PREFIX}{section}_{f.name}".upper() for f in fields(cls)]
    return names


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A line per ``TIDEGATE_*`` variable that tidegate does not read (a typo
    would otherwise be ignored in silence), with the nearest known name."""
    known = known_variables()
    lines = []
    for name in sorted(n for n in env if n.upper().startswith(ENV_PREFIX)):
        if name in known:
            continue
        near = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        lines.append(f"{name} is not a tidegate setting and is ignored{hint}")
    return lines


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``TIDEGATE_<SECTION>_<FIELD>``; a list field (``redis.sentinels``,
    ``scaler.namespaces``, ...) takes a comma-separated value."""
    out: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS:
        for f in fields(cls):
            value = env.get(f"{ENV_PREFIX}{section}_{f.name}".upper())
            if value is not None:
                listed = "tuple" in str(f.type)
                parsed = [v.strip() for v in value.split(",") if v.strip()] if listed else value
                out.setdefault(section, {})[f.name] = parsed
    return out


def _read_url_file(merged: dict[str, Any]) -> None:
    """``redis.url_file``: the URL from a file (a mounted Secret), in place of ``url``."""
    redis = merged.get("redis")
    if not isinstance(redis, dict) or not redis.get("url_file"):
        return
    path = Path(str(redis["url_file"]))
    try:
        url = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigError([f"redis.url_file: cannot read {path}: {reason}"]) from None
    if not url:
        raise ConfigError([f"redis.url_file: {path} is empty"])
    merged["redis"] = {**redis, "url": url}


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
    _read_url_file(merged)
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
