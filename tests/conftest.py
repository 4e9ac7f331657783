"""Shared fixtures: a data dir, a movable clock, a scheduler factory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.scheduler.handlers import HandlerRegistry, default_registry
from services.scheduler.scheduler import Scheduler


class FakeClock:
    """A clock tests move by hand: ``clock()`` returns the current fake instant."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc))


@pytest.fixture
def registry() -> HandlerRegistry:
    return default_registry()


@pytest.fixture
def make_scheduler(data_dir: Path, registry: HandlerRegistry):
    def factory(**kwargs) -> Scheduler:
        kwargs.setdefault("registry", registry)
        scheduler = Scheduler(data_dir, **kwargs)
        scheduler.load()
        return scheduler

    return factory
