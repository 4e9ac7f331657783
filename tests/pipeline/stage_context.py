"""A StageContext for tests: the machine's side of a stage call, recording job updates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.scheduler.clock import utc_now

__all__ = ["RecordingContext"]


class RecordingContext:
    """``now()`` from ``clock`` (default the real one); ``update_job`` calls kept in ``updates``."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def now(self) -> datetime:
        return self._clock()

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        self.updates.append((job_id, fields))
