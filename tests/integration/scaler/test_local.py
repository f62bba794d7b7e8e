"""The local actuator: worker processes started, replaced and stopped."""

from __future__ import annotations

from pathlib import Path

import yaml

from scaler.local import LocalActuator
from tidegate.settings import (
    Settings,
)


async def test_local_actuator_starts_replaces_and_stops_workers(
    tmp_path: Path, settings: Settings
) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": settings.redis.url},
                "routes": [{"name": "orders", "match": {"path_prefix": "/orders"}}],
            }
        )
    )
    actuator = LocalActuator(str(config), "orders", upstream="http://127.0.0.1:9", stop_grace_s=5)
    try:
        assert await actuator.scale(2)
        assert not await actuator.scale(2)
        observed = await actuator.observe()
        assert (observed.desired, observed.current) == (2, 2)
        victim = actuator._running[0]
        victim.kill()
        await victim.wait()
        replaced = await actuator.observe()  # an exited worker is replaced
        assert replaced.current == 2
        assert victim not in actuator._running
        assert await actuator.scale(0)
        assert (await actuator.observe()).current == 0
    finally:
        await actuator.close()
    assert not actuator._running
    assert not actuator._stopping
