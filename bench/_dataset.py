"""Shared benchmark dataset: 100,000 scheduled jobs spread over 365 daily files.

``make_dataset`` builds the jobs in memory, ``put``s them into a ``JobStorage`` and writes
them with one ``flush`` (so the files are exactly what the scheduler itself writes).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from services.scheduler.clock import DEFAULT_TIMEZONE, load_timezone, utc_now
from services.scheduler.models import JobPriority, ScheduledJob
from services.scheduler.storage import JobStorage

__all__ = ["VIETNAMESE_CONTENT", "make_dataset", "temp_dir"]

VIETNAMESE_CONTENT = "Chương {n}: Xin chào các bạn, hôm nay chúng ta đọc tiếp truyện tranh!"
_PRIORITIES = tuple(JobPriority)


def make_dataset(data_dir: Path | str, n_jobs: int = 100_000, days: int = 365) -> int:
    """Write ``n_jobs`` SCHEDULED jobs into ``days`` daily files; return the files written.

    Jobs are spaced evenly from the next local midnight (Asia/Ho_Chi_Minh) over ``days``
    days, so every job is in the future and each day file holds about n_jobs/days jobs.
    """
    zone = load_timezone(DEFAULT_TIMEZONE)
    now = utc_now()
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, time(), tzinfo=zone).astimezone(UTC)
    step = timedelta(days=days) / n_jobs
    storage = JobStorage(data_dir, zone)
    for i in range(n_jobs):
        storage.put(
            ScheduledJob(
                account_id=f"account-{i % 50}",
                content=VIETNAMESE_CONTENT.format(n=i),
                scheduled_time=start + step * i,
                priority=_PRIORITIES[i % len(_PRIORITIES)],
                created_at=now,
                updated_at=now,
            )
        )
    return storage.flush()


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
