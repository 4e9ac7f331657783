"""StageContext: what a stage handler may use besides its event (the seed's Lambda context).

Stages stay plain functions ``handler(event: dict, context) -> dict``. The machine passes a
context with the clock, a read-only view of the scheduler's jobs and a way to change the
job record, so a stage neither reads the wall clock itself, nor guesses at job files, nor
writes them behind the scheduler's back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from services.scheduler.models import ScheduledJob

__all__ = ["StageContext"]


class StageContext(Protocol):
    """The machine's side of a stage call."""

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
