"""Settling the heap once a part has started (``tidegate.process.settle_heap``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tidegate.process import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


def test_what_start_up_built_is_never_walked_again(unfrozen: None) -> None:
    built = Node()
    assert gc.is_tracked(built)
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert not any(o is built for o in gc.get_objects())  # a collection walks what is left


def test_what_comes_later_is_still_collected(unfrozen: None) -> None:
    settle_heap()
    later = Node()
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None


def test_garbage_of_start_up_is_collected_before_freezing(unfrozen: None) -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    settle_heap()
    assert gone() is None  # not frozen alive
