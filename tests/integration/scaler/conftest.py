"""Fixtures of the scaler tests: the fake Kubernetes API server and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scaler.kube import Kube, load_api_client
from tests.fake_kube import FakeKube


@pytest.fixture
async def fake() -> AsyncIterator[FakeKube]:
    server = FakeKube()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def kube(fake: FakeKube, tmp_path: Path) -> Kube:
    return Kube(load_api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))), timeout_s=5)
