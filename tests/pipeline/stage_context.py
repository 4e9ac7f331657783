"""A StageContext for tests: the machine's side of a stage call, recording job updates."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline.settings import PipelineSettings, load_settings
from services.scheduler.clock import utc_now
from services.scheduler.models import ScheduledJob

__all__ = ["RecordingContext"]


class RecordingContext:
    """``now()`` from ``clock`` (default the real one); ``update_job`` calls kept in ``updates``.

    :param data_dir: the data dir the stages work in; default the test's DATA_DIR (as the
        CLI would take it from the environment), else ./data.
    :param settings: fixed settings; default: read (``load_settings``) at each access, so a
        test's ``monkeypatch.setenv`` takes effect as it did when stages read them.
    :param jobs: what ``jobs()`` shows.
    """

    def __init__(
        self,
        clock: Callable[[], datetime] = utc_now,
        *,
        data_dir: Path | str | None = None,
        settings: PipelineSettings | None = None,
        jobs: Iterable[ScheduledJob] = (),
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._jobs = list(jobs)
        self.data_dir = Path(data_dir if data_dir is not None else os.environ.get("DATA_DIR") or "./data")
        self.updates: list[tuple[str, dict[str, Any]]] = []

    @property
    def settings(self) -> PipelineSettings:
        return self._settings if self._settings is not None else load_settings()

    @property
    def samples_dir(self) -> Path:
        return self.settings.local_chapters(self.data_dir)

    def settings_for(self, account_id: str) -> PipelineSettings:
        return self.settings.for_account(account_id)

    def now(self) -> datetime:
        return self._clock()

    def jobs(self, kind: str | None = None) -> list[ScheduledJob]:
        return [job for job in self._jobs if kind is None or job.kind == kind]

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        self.updates.append((job_id, fields))
