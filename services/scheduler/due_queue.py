"""DueQueue: which SCHEDULED jobs are due, in dispatch order, without scanning every job.

Two heaps of job ids: *waiting*, ordered by scheduled_time, and *ready* (due now), ordered
by priority (highest first) then scheduled_time. Entries are never edited in place: a job
re-tracked after a change gets a fresh entry and its old ones go stale, to be dropped when
they surface. So a pass costs O(k log n) for the k jobs it touches, not O(n) for the
100,000 stored.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from .models import JobStatus, ScheduledJob

__all__ = ["DueQueue"]


class DueQueue:
    """Index of SCHEDULED jobs by due time and priority.

    :param lookup: returns the current job for an id, or None once it is gone.
    """

    def __init__(self, lookup: Callable[[str], ScheduledJob | None]) -> None:
        self._lookup = lookup
        self._seq = itertools.count()
        self._latest: dict[str, int] = {}  # job_id -> seq of its only valid entry
        self._waiting: list[tuple[datetime, int, str]] = []
        self._ready: list[tuple[int, datetime, int, str]] = []

    def track(self, job: ScheduledJob) -> None:
        """Record the job's current state: index it if SCHEDULED, else forget it."""
        if job.status is JobStatus.SCHEDULED:
            seq = next(self._seq)
            self._latest[job.job_id] = seq
            heapq.heappush(self._waiting, (job.scheduled_time, seq, job.job_id))
        else:
            self._latest.pop(job.job_id, None)

    def track_all(self, jobs: Iterable[ScheduledJob]) -> None:
        """Index many jobs at once (at load): one heapify instead of a push each."""
        for job in jobs:
            if job.status is JobStatus.SCHEDULED:
                seq = next(self._seq)
                self._latest[job.job_id] = seq
                self._waiting.append((job.scheduled_time, seq, job.job_id))
        heapq.heapify(self._waiting)

    def forget(self, job_id: str) -> None:
        """Drop a job (deleted): its entries go stale."""
        self._latest.pop(job_id, None)

    def _valid(self, seq: int, job_id: str) -> bool:
        return self._latest.get(job_id) == seq and self._lookup(job_id) is not None

    def collect(self, now: datetime) -> None:
        """Move every job due at ``now`` from waiting to ready."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            when, seq, job_id = heapq.heappop(waiting)
            if self._valid(seq, job_id):
                job = self._lookup(job_id)
                assert job is not None
                heapq.heappush(self._ready, (-int(job.priority), when, seq, job_id))

    def pop_ready(self) -> ScheduledJob | None:
        """Remove and return the ready job to run next, or None."""
        while self._ready:
            _, _, seq, job_id = heapq.heappop(self._ready)
            if self._valid(seq, job_id):
                del self._latest[job_id]
                return self._lookup(job_id)
        return None

    def ready(self) -> Iterator[ScheduledJob]:
        """The ready jobs in dispatch order (does not remove them)."""
        for _, _, seq, job_id in sorted(self._ready):
            if self._valid(seq, job_id):
                job = self._lookup(job_id)
                if job is not None:
                    yield job

    def take_ready_if(self, predicate: Callable[[ScheduledJob], bool]) -> list[ScheduledJob]:
        """Remove and return the ready jobs matching ``predicate`` (used for expiry)."""
        taken, kept = [], []
        for entry in self._ready:
            seq, job_id = entry[2], entry[3]
            if not self._valid(seq, job_id):
                continue
            job = self._lookup(job_id)
            assert job is not None
            if predicate(job):
                del self._latest[job_id]
                taken.append(job)
            else:
                kept.append(entry)
        if taken or len(kept) != len(self._ready):
            heapq.heapify(kept)
            self._ready = kept
        return taken

    def next_due(self) -> datetime | None:
        """The earliest scheduled_time still waiting, or None."""
        waiting = self._waiting
        while waiting and not self._valid(waiting[0][1], waiting[0][2]):
            heapq.heappop(waiting)
        return waiting[0][0] if waiting else None

    def earliest_ready_time(self) -> datetime | None:
        """The oldest scheduled_time among ready jobs (for their expiry deadline)."""
        times = [entry[1] for entry in self._ready if self._valid(entry[2], entry[3])]
        return min(times) if times else None
