"""gc_paused: the collector is off during a bulk load, and what it loaded is frozen after."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.scheduler.gc_pause import gc_paused
from services.scheduler.scheduler import Scheduler


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # let the rest of the session collect what these tests froze
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _collectable(obj: object) -> bool:
    """Whether a (tracked) object is in a generation the collector scans."""
    return any(o is obj for o in gc.get_objects())


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_loaded_objects_are_frozen_and_collector_is_back_on() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        loaded = [{"job": n} for n in range(3)]
    assert gc.isenabled()
    assert gc.is_tracked(loaded)
    assert not _collectable(loaded)
    assert not _collectable(loaded[0])


def test_garbage_from_before_the_load_is_collected_not_frozen() -> None:
    gc.enable()
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    ref = weakref.ref(a)
    del a, b
    with gc_paused():
        pass
    assert ref() is None


def test_nested_block_leaves_it_to_the_outer_one() -> None:
    gc.enable()
    with gc_paused():
        with gc_paused():
            inner = [1]
        assert not gc.isenabled()
        assert _collectable(inner)  # not frozen yet: the outer block is still loading
    assert gc.isenabled()
    assert not _collectable(inner)


def test_a_load_that_raises_freezes_nothing() -> None:
    gc.enable()
    partial: list[object] = []
    with pytest.raises(RuntimeError), gc_paused():
        partial.append([1])
        raise RuntimeError("load failed")
    assert gc.isenabled()
    assert _collectable(partial[0])


def test_collector_already_off_is_left_alone() -> None:
    gc.disable()
    with gc_paused():
        loaded = [1]
    assert not gc.isenabled()
    assert _collectable(loaded)


def test_scheduler_load_freezes_the_jobs(tmp_path) -> None:
    gc.enable()
    first = Scheduler(tmp_path)
    first.load()
    first.add_job("acct", "hello")
    first.manager.commit()
    scheduler = Scheduler(tmp_path)
    assert scheduler.load() == 1
    job = next(iter(scheduler.manager.jobs.values()))
    assert not _collectable(job)
    assert not _collectable(scheduler.manager.jobs)
