"""Shared fixtures: a sealed environment, a data dir, a movable clock, a scheduler factory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.pipeline.settings import PipelineSettings
from services.scheduler.handlers import HandlerRegistry, default_registry
from services.scheduler.scheduler import Scheduler

SEALED_ENV = (
    *(name.upper() for name in PipelineSettings.model_fields),  # the pipeline's settings
    "PIPELINE_SETTINGS_FILE",
    # the scheduler's settings and what the stages read
    "DATA_DIR", "SCHEDULER_TIMEZONE", "API_PORT", "MAX_CONCURRENT_JOBS", "SHUTDOWN_GRACE_SECONDS",
    "LOG_LEVEL", "DAILY_QUOTA", "VIDEO_FORMAT", "SAMPLES_DIR", "API_TIMEOUT_SECONDS",
    "SCHEDULER_CONFIG", "SCHEDULER_MISFIRE_GRACE_TIME", "SCHEDULER_MAX_INSTANCES", "MAX_SCHEDULE_LOOKAHEAD_DAYS",
    "DEFAULT_MAX_RETRIES", "DEFAULT_RETRY_DELAY", "MAX_SCHEDULES_PER_CREATOR", "SERVICE_NAME", "SERVICE_VERSION",
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
    # what the client libraries read on their own
    "OAUTHLIB_INSECURE_TRANSPORT", "OAUTHLIB_RELAX_TOKEN_SCOPE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)
"""Variables no test inherits from the machine (a test sets what it needs)."""


@contextlib.contextmanager
def sealed(folder: Path) -> Iterator[None]:
    """Run without the machine's settings; leave ``os.environ`` as found.

    The developer's ``config/settings.toml`` is never read: PIPELINE_SETTINGS_FILE names a
    file in ``folder`` that does not exist (a test writes its own through ``settings_path``).
    What the code under test writes into ``os.environ`` (``demo``, the pipeline's install)
    is undone afterwards. Subprocesses get their environment from ``os.environ``, so they
    are sealed too.
    """
    saved = dict(os.environ)
    for name in SEALED_ENV:
        os.environ.pop(name, None)
    os.environ["PIPELINE_SETTINGS_FILE"] = str(folder / "no-settings-file.toml")
    os.environ["SCHEDULER_CONFIG"] = str(folder / "no-scheduler-config.toml")  # not the checkout's own
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def sealed_environment(tmp_path: Path) -> Iterator[None]:
    """Every test runs ``sealed`` (see there)."""
    with sealed(tmp_path):
        yield


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
