"""StageContext: what a stage handler may use besides its event (the seed's Lambda context).

Stages stay plain functions ``handler(event: dict, context) -> dict``. The machine passes a
context with the data dir, the settings, the clock, a read-only view of the scheduler's
jobs and a way to change the job record, so a stage reads no process global (no
``os.environ``, no settings file of its own), guesses at no job files and writes none
behind the scheduler's back. Two schedulers on two data dirs in one process hand their
stages two contexts, and neither sees the other's files.

``RunContext`` is the implementation for a scheduler job; tests build their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.pipeline.settings import PipelineSettings
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import SettingsError

__all__ = ["RunContext", "StageContext"]


class StageContext(Protocol):
    """The machine's side of a stage call."""

    @property
    def data_dir(self) -> Path:
        """The scheduler's data dir: work/, tasks/, published/, counters.json live under it."""
        ...

    def settings_for(self, account_id: str) -> PipelineSettings:
        """The pipeline settings with ``[accounts.<account_id>]`` applied (SettingsError)."""
        ...

    def now(self) -> datetime:
        """The current instant (aware UTC)."""
        ...

    def jobs(self, kind: str | None = None) -> Sequence[ScheduledJob]:
        """A snapshot of the scheduler's jobs (of ``kind``; None: all), in no order.

        Read-only: the records are the scheduler's own objects, which it replaces rather
        than changes, so each is consistent; change a job only through ``update_job``.
        check-quota counts from it (``quota.py``).
        """
        ...

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the job's record and save it durably."""
        ...


class RunContext:
    """StageContext for the stages of one scheduler job (stages may run in a worker thread).

    :param scheduler: the Scheduler whose job this is (its data dir, clock and jobs).
    :param load_settings: reads the pipeline settings; called once, by the first stage that
        asks, so a broken settings file fails that stage (and HandleError says why) and an
        edit takes effect at the next video.
    :param loop: the scheduler's event loop (``update_job`` from a worker thread runs there).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        load_settings: Callable[[], PipelineSettings],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._load = load_settings
        self._settings: PipelineSettings | SettingsError | None = None
        self._loop = loop
        self.data_dir: Path = Path(scheduler.data_dir)

    @property
    def settings(self) -> PipelineSettings:
        """The run's settings (read once; a SettingsError is raised again to each caller)."""
        if self._settings is None:
            try:
                self._settings = self._load()
            except SettingsError as exc:
                self._settings = exc
        if isinstance(self._settings, SettingsError):
            raise SettingsError(str(self._settings))
        return self._settings

    def settings_for(self, account_id: str) -> PipelineSettings:
        return self.settings.for_account(account_id)

    @property
    def samples_dir(self) -> Path:
        """The local chapters folder (SAMPLES_DIR, default DATA_DIR/samples)."""
        return self.settings.local_chapters(self.data_dir)

    def now(self) -> datetime:
        return self._scheduler.clock()

    def jobs(self, kind: str | None = None) -> list[ScheduledJob]:
        """A snapshot of the Scheduler's in-memory table (see ``StageContext.jobs``)."""
        return self._scheduler.jobs_snapshot(kind)

    def state_finished(self, state: str, seconds: float) -> None:
        """The machine's word that Task ``state`` returned after ``seconds``: a metric."""
        # imported here: the metrics read the stages' quota, and the stages import this module
        from services.pipeline.metrics import record_state_duration

        record_state_duration(self._scheduler, state, seconds)

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        if self._loop is None:
            raise RuntimeError("this context has no event loop to save the job on")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("update_job is for stages running in a worker thread")
        update = self._scheduler.update_fields(job_id, fields)
        asyncio.run_coroutine_threadsafe(update, self._loop).result()
