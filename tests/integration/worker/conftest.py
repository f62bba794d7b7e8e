"""Fixtures of the worker tests."""

from __future__ import annotations

import pytest

from tests.conftest import on_both
from tidegate.settings import Settings


@pytest.fixture(params=["standalone", "cluster"])
def settings(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    """The worker's tests on one server and on the session's Redis Cluster."""
    return on_both(request, redis_url)
