"""JobStore: what the scheduler needs from the place its jobs are kept.

``JobManager`` (and, through it, the executor, the recovery, the API's ``/health``) talks
to its storage only through these members. ``storage.JobStorage`` (the daily JSON files,
one writer thread) is the implementation; another store (PostgreSQL, for more than one VM:
see "A second job store" in ``docs/architecture.md``) would be a new module beside it that
a ``Scheduler`` is given as ``store=``.

The contract every store keeps:

- ``jobs`` is the in-memory table, one dict shared by reference: the manager, its due
  queue, the recovery and every reader (``list_jobs``, the quota's view) read it. Nothing
  but ``put``, ``delete`` and ``load`` changes it.
- A change is made in memory by ``put`` / ``delete`` and becomes durable at the next
  ``flush`` / ``flush_async``; either returns only once every change made before the call
  is durable, and raises ``StorageError`` (``disk_changed`` says whether anything reached
  the store) if it is not. A failed change stays pending, so the next flush retries it.
- ``write_failure`` says the store refuses writes; while it is set the loop starts no job
  and retries (``flush_async`` when changes are pending, else ``probe_write``).

The quota needs nothing more than ``jobs`` (it counts the scheduler's own view). There is
no execution history yet; when there is, its records get their own member here.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from .models import ScheduledJob

__all__ = ["JobStore"]


@runtime_checkable
class JobStore(Protocol):
    """The job table and where it is kept (see the module docstring for the contract)."""

    jobs: dict[str, ScheduledJob]
    """The in-memory table, by job id: what every component reads."""

    write_failure: str | None
    """Why the last write failed, or None once one succeeded: the loop starts no job while set."""

    def load(self) -> dict[str, ScheduledJob]:
        """Replace ``jobs`` with everything the store holds and return it (once, at start)."""
        ...

    def put(self, job: ScheduledJob) -> None:
        """Insert or replace ``job`` in ``jobs``; durable at the next flush."""
        ...

    def delete(self, job_id: str) -> ScheduledJob | None:
        """Remove a job from ``jobs`` (durable at the next flush); return it, or None if absent."""
        ...

    def flush(self) -> int:
        """Make every pending change durable, blocking (the CLI's direct mode); return how
        many units (files, rows) were written. Raises StorageError."""
        ...

    async def flush_async(self) -> int:
        """``flush`` for the event loop: awaits the write without blocking the loop. A
        cancelled caller does not cancel the write. Raises StorageError."""
        ...

    def probe_write(self) -> None:
        """Check that the store takes a write now (after a failure, nothing pending):
        clears ``write_failure`` or raises StorageError."""
        ...

    @property
    def pending_days(self) -> frozenset[date]:
        """Days with changes not yet handed to the writer: non-empty means a flush has work
        (the loop then commits in the background, or retries with a flush, not a probe)."""
        ...
