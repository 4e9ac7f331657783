"""JobStorage: the jobs, kept in daily JSON files under ``DATA_DIR/jobs/``.

File format (documented for operators in the README)::

    {"version": 1, "date": "YYYY-MM-DD", "jobs": {"<job_id>": {<ScheduledJob>}, ...}}

pretty-printed UTF-8, Vietnamese left readable (the format's pieces: ``day_file.py``).
A job lives in the file of its *day*: the local date (configured zone) of
``completed_at`` if set, else of ``scheduled_time``.

Durability: each changed day is written to a temp file in the same folder, flushed,
fsynced, moved over the old file with ``os.replace``, and the folder is fsynced. Only the
days that changed since the last flush are written; a day left empty loses its file.
A job that moves day is first written into its new day *and* kept in its old one; only
once that is on disk is the old day rewritten without it, so a crash between the two
leaves two copies (resolved on load by the newest ``updated_at``), never none.

One writer thread: a flush snapshots the bytes of every changed day on the caller's
thread (cheap: each job's serialized form is cached until it changes, and each day keeps
its entries in file order, ``day_order.DayOrder``) and hands the
snapshot to a single writer thread, which does the file I/O in order, one snapshot after
another. ``flush`` blocks until its snapshot is on disk; ``flush_async`` awaits it, so
the daemon's event loop never waits for an fsync. Either returns only when every change
made before the call is durable (a failed earlier snapshot is written again).

Group commit: ``flush_async`` calls that arrive while an async write is on its way wait
for it and then share one snapshot, so a burst of changes to today's file (four clients
triggering schedules, each job then marked RUNNING and COMPLETED) costs one rewrite per
round instead of one per change. Every change bumps a sequence number; a snapshot
carries the number it covers, and a flush returns once a snapshot covering its own
number (and everything queued before it) is on disk.

On load a file that does not parse is moved aside as ``<name>.corrupt-<timestamp>``; a
record that fails validation is logged, copied to ``jobs/rejected/`` and kept verbatim in
its day file whenever that day is rewritten, so nothing is silently dropped.

Storage does no locking between processes: the caller holds the data-dir lock (see
``lock.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timezone, tzinfo
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .atomic_file import TEMP_SUFFIX, fsync_dir, storage_error, write_atomic
from .clock import Clock, local_date, local_day_bounds, utc_now
from .day_file import (
    FILE_PREFIX,
    FILE_SUFFIX,
    FORMAT_VERSION,
    DayFile,
    day_from_name,
    document,
    encode_entry,
    encode_record,
    file_order,
    in_utc_outside,
)
from .day_order import DayOrder
from .errors import JobValidationError, StorageError
from .gc_pause import gc_paused
from .models import BULK_LOAD, ScheduledJob

__all__ = ["FORMAT_VERSION", "JobStorage"]

_FLUSH_ROUNDS = 3  # a flush writes again when an earlier snapshot failed; at most this often

logger = logging.getLogger(__name__)

_writer: ThreadPoolExecutor | None = None
_writer_guard = threading.Lock()


def _writer_thread() -> ThreadPoolExecutor:
    """The process's one writer thread (FIFO: snapshots reach the disk in the order taken)."""
    global _writer
    with _writer_guard:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-writer")
        return _writer


@dataclass(eq=False)
class _Snapshot:
    """What one flush writes: file contents taken on the caller's thread, written later.

    ``first`` holds every changed day with its jobs plus the jobs that moved away from
    it; ``second`` the days jobs left, without them (written only after ``first`` is on
    disk). ``None`` contents mean "remove the file". ``days`` and ``departed`` are what to
    mark dirty again if the write fails.
    """

    first: list[tuple[Path, bytes | None]]
    second: list[tuple[Path, bytes | None]]
    days: frozenset[date]
    departed: dict[date, set[str]]
    seq: int = 0  # the storage's change number when it was taken
    failed: bool = field(default=False)


class JobStorage:
    """The in-memory job table and the daily files behind it.

    :param data_dir: the scheduler's data dir; files go to ``data_dir/jobs``.
    :param zone: the zone whose calendar dates name the daily files.
    :param clock: the wall clock (used only to stamp quarantined file names).

    ``jobs`` is the table every component reads. Change it only through ``put`` and
    ``delete``, then call ``flush`` to make the change durable.
    """

    def __init__(self, data_dir: Path | str, zone: tzinfo, *, clock: Clock = utc_now) -> None:
        self.jobs_dir = Path(data_dir) / "jobs"
        self.rejected_dir = self.jobs_dir / "rejected"
        self.zone = zone
        self._clock = clock
        self.jobs: dict[str, ScheduledJob] = {}
        self._home: dict[str, date] = {}  # job_id -> the day file it belongs in
        self._members: dict[date, set[str]] = defaultdict(set)  # day -> job ids
        self._rejected: dict[date, dict[str, Any]] = defaultdict(dict)  # day -> raw records
        self._dirty: set[date] = set()
        self._departed: dict[date, set[str]] = defaultdict(set)  # moved away since last flush
        # _dirty, _departed and _queued are shared with the writer thread: hold _sync
        self._sync = threading.Lock()
        self._queued: list[_Snapshot] = []  # handed to the writer, not yet written
        # job_id -> its serialized entry; a write re-serializes only the jobs that changed
        self._fragments: dict[str, bytes] = {}
        # day -> its job ids in file order and their kept entries (day_order.py), built on
        # a day's first write, kept in order by put and delete
        self._order: dict[date, DayOrder] = {}
        self._seq = 0  # bumped by every put and delete (under _sync)
        self._durable_seq = 0  # every change numbered up to this is on disk
        self._inflight: asyncio.Task[int] | None = None  # the async write others may join
        self.write_failure: str | None = None
        """Why the last write failed (None once a write succeeded): the daemon starts no
        job and retries while it is set."""

    # -- queries ------------------------------------------------------------------------

    def day_of(self, job: ScheduledJob) -> date:
        """The day file a job belongs in: local date of completed_at, else scheduled_time."""
        return local_date(job.completed_at or job.scheduled_time, self.zone)

    def path_for(self, day: date) -> Path:
        """The daily file of ``day``."""
        return self.jobs_dir / f"{FILE_PREFIX}{day.isoformat()}{FILE_SUFFIX}"

    @property
    def pending_days(self) -> frozenset[date]:
        """Days changed in memory and not yet handed to the writer."""
        with self._sync:
            return frozenset(self._dirty)

    # -- changes ------------------------------------------------------------------------

    def put(self, job: ScheduledJob) -> None:
        """Insert or replace ``job`` in memory and mark its day (and a day it left) dirty."""
        job_id = job.job_id
        new_day = self.day_of(job)
        old_day = self._home.get(job_id)
        previous = self.jobs.get(job_id)
        self.jobs[job_id] = job
        self._fragments.pop(job_id, None)
        if old_day != new_day:
            if old_day is not None:
                self._unorder(old_day, job_id)
            self._reorder(new_day, job_id)
        elif previous is None or previous.scheduled_time != job.scheduled_time:
            self._unorder(new_day, job_id)
            self._reorder(new_day, job_id)
        else:  # same place in the file: only its entry is to be encoded again
            order = self._order.get(new_day)
            if order is not None and not order.touch(job_id):
                del self._order[new_day]
        with self._sync:
            if old_day != new_day:
                if old_day is not None:
                    self._members[old_day].discard(job_id)
                    self._departed[old_day].add(job_id)
                    self._dirty.add(old_day)
                self._members[new_day].add(job_id)
                self._home[job_id] = new_day
            self._dirty.add(new_day)
            self._seq += 1

    def delete(self, job_id: str) -> ScheduledJob | None:
        """Remove a job from memory and mark its day dirty; return it, or None if absent."""
        job = self.jobs.pop(job_id, None)
        self._fragments.pop(job_id, None)
        day = self._home.pop(job_id, None)
        if day is not None:
            self._members[day].discard(job_id)
            self._unorder(day, job_id)
            with self._sync:
                self._dirty.add(day)
                self._seq += 1
        return job

    def flush(self) -> int:
        """Write every changed day durably; return how many files were written or removed.

        Blocks until the writer thread has put this snapshot (and every earlier one) on
        disk. Raises StorageError if the disk refuses; the days stay dirty for the next try.
        """
        written = 0
        for _ in range(_FLUSH_ROUNDS):
            snapshot, ahead, taken = self._take_snapshot()
            if snapshot is None and not ahead:
                self._made_durable(taken)
                return written
            written += _writer_thread().submit(self._write, snapshot).result()
            if not any(earlier.failed for earlier in ahead):
                self._made_durable(taken)
                return written
        raise self._still_failing()

    async def flush_async(self) -> int:
        """``flush`` for the event loop: awaits the writer thread instead of blocking.

        Joins the async write already on its way when that write covers this caller's
        changes; otherwise waits for it and then leads the next one, which takes every
        change made meanwhile (group commit, see the module docstring). The write goes on
        if the awaiting task is cancelled (its snapshot is already taken), and a failure
        still marks its days dirty again. Returns how many files this call's own write
        wrote (0 when it joined another's).
        """
        with self._sync:
            target = self._seq
        while True:
            inflight = self._inflight
            if inflight is None or inflight.done():
                if self._durable_seq >= target:
                    return 0
                inflight = self._inflight = asyncio.ensure_future(self._flush_rounds())
                inflight.add_done_callback(self._write_done)
                return await asyncio.shield(inflight)
            with contextlib.suppress(StorageError):  # its leader reports it; we try again below
                await asyncio.shield(inflight)
            if self._durable_seq >= target:
                return 0

    def _write_done(self, task: asyncio.Task[int]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: the leader (or nobody, if it was cancelled) reports it

    async def _flush_rounds(self) -> int:
        """Hand snapshots to the writer until every change taken is on disk (the lead write)."""
        written = 0
        for _ in range(_FLUSH_ROUNDS):
            snapshot, ahead, taken = self._take_snapshot()
            if snapshot is None and not ahead:
                self._made_durable(taken)
                return written
            future = asyncio.wrap_future(_writer_thread().submit(self._write, snapshot))
            written += await future
            if not any(earlier.failed for earlier in ahead):
                self._made_durable(taken)
                return written
        raise self._still_failing()

    def _still_failing(self) -> StorageError:
        return StorageError(f"cannot write job files in {self.jobs_dir}: earlier writes keep failing")

    def _made_durable(self, seq: int) -> None:
        """Every change numbered up to ``seq`` is on disk (its snapshot and those ahead were written)."""
        with self._sync:
            self._durable_seq = max(self._durable_seq, seq)

    def _take_snapshot(self) -> tuple[_Snapshot | None, list[_Snapshot], int]:
        """Take the dirty days' contents (None if nothing changed), the snapshots ahead,
        and the change number the two cover together."""
        with self._sync:
            ahead = list(self._queued)
            if not self._dirty:
                return None, ahead, self._seq
            dirty = sorted(self._dirty)
            departed = {day: set(ids) for day, ids in self._departed.items() if ids}
            snapshot = _Snapshot(
                first=[self._day_contents(day, departed.get(day, ())) for day in dirty],
                second=[self._day_contents(day, ()) for day in dirty if day in departed],
                days=frozenset(dirty),
                departed=departed,
                seq=self._seq,
            )
            self._dirty.clear()
            self._departed.clear()
            self._queued.append(snapshot)
        return snapshot, ahead, snapshot.seq

    def _write(self, snapshot: _Snapshot | None) -> int:
        """On the writer thread: put a snapshot on disk; on failure mark its days dirty."""
        if snapshot is None:  # nothing of ours to write: waiting for the ones ahead is all
            return 0
        written = 0
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            for path, data in snapshot.first:
                written += _put_file(path, data)
            if snapshot.second:
                fsync_dir(self.jobs_dir)
                for path, data in snapshot.second:
                    written += _put_file(path, data)
            fsync_dir(self.jobs_dir)
        except Exception as exc:
            with self._sync:  # its days must be written again: keep them dirty
                snapshot.failed = True
                self._dirty.update(snapshot.days)
                for day, ids in snapshot.departed.items():
                    self._departed[day].update(ids)
            self.write_failure = str(exc)
            if isinstance(exc, OSError):
                # written == 0: no file was replaced, so the disk is as it was
                raise storage_error("write job files", self.jobs_dir, exc, disk_changed=written > 0) from exc
            raise
        finally:
            with self._sync:
                self._queued.remove(snapshot)
        self.write_failure = None
        return written

    def probe_write(self) -> None:
        """Check that the jobs folder takes a write now (after a failure, before resuming).

        Writes and removes a small temp file; raises StorageError (DiskFullError) if the
        disk still refuses, else clears ``write_failure``.
        """
        probe = self.jobs_dir / f".write-probe.{os.getpid()}{TEMP_SUFFIX}"
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(probe, b"\0" * 4096, sync_dir=False)
            probe.unlink()
        except OSError as exc:
            probe.unlink(missing_ok=True)
            self.write_failure = str(exc)
            raise storage_error("write job files", self.jobs_dir, exc, disk_changed=False) from exc
        self.write_failure = None

    # -- loading ------------------------------------------------------------------------

    def load(self) -> dict[str, ScheduledJob]:
        """Read every daily file into ``jobs`` and return it.

        Duplicates resolve to the newest ``updated_at`` (on a tie, the copy in the file the
        job belongs in). Days whose files need rewriting (a duplicate, a job in the wrong
        file) are left dirty, so the next flush tidies them.
        """
        self.jobs.clear()
        self._home.clear()
        self._members.clear()
        self._rejected.clear()
        self._dirty.clear()
        self._departed.clear()
        self._fragments.clear()
        self._order.clear()
        if not self.jobs_dir.is_dir():
            return self.jobs
        self._remove_stale_temp_files()
        with gc_paused():
            self._load_files()
        return self.jobs

    def _load_files(self) -> None:
        # Bulk work in C where it can be (dict and set updates per file); one Python pass
        # per job puts its instants in UTC and spots a job in the wrong file.
        jobs = self.jobs
        by_file: dict[date, dict[str, ScheduledJob]] = {}  # file -> the jobs whose kept copy it holds
        copies: dict[str, list[date]] = {}  # job_id -> every file it is in (only if 2+)
        winner: dict[str, date] = {}  # job_id in copies -> the file its kept copy came from
        for path in sorted(self.jobs_dir.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")):
            file_day = day_from_name(path.name)
            if file_day is None:
                logger.warning("ignoring file with a name that is not a day: %s", path.name)
                continue
            found = self._read_file(path, file_day)
            for job_id in found.keys() & jobs.keys() if jobs else ():  # rare: a crash mid-move
                held = next(day for day, kept in by_file.items() if job_id in kept)
                copies.setdefault(job_id, [held]).append(file_day)
                job = found[job_id]
                if _newer(job, file_day, jobs[job_id], self.day_of(job)):
                    del by_file[held][job_id]
                    winner[job_id] = file_day
                else:
                    del found[job_id]
                    winner[job_id] = held
            by_file[file_day] = found
            jobs.update(found)
        for file_day, kept in by_file.items():
            self._home.update(dict.fromkeys(kept, file_day))
            self._members[file_day].update(kept)
            for job in in_utc_outside(kept.values(), local_day_bounds(file_day, self.zone)):
                home = self.day_of(job)
                if home == file_day:
                    continue
                job_id = job.job_id
                self._home[job_id] = home
                self._members[file_day].discard(job_id)
                self._members[home].add(job_id)
                if job_id not in copies:  # a copy in two files is tidied below
                    self._departed[file_day].add(job_id)
                    self._dirty.update((file_day, home))
                    self._seq += 1  # a tidy-up to write: a change like any other (flush_async writes it)
        for job_id, files in copies.items():
            logger.warning(
                "job found in more than one file; keeping the newest copy",
                extra={"job_id": job_id, "files": [d.isoformat() for d in files]},
            )
            home = self._home[job_id]
            for other in files:
                if other != home:
                    self._departed[other].add(job_id)
                    self._dirty.add(other)
            if winner[job_id] != home:  # its day holds a stale copy or none: it gets the kept one
                self._dirty.add(home)
            self._seq += 1

    def _read_file(self, path: Path, file_day: date) -> dict[str, ScheduledJob]:
        """The jobs of one file by id (their instants still to be put in UTC: BULK_LOAD)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        try:
            parsed = DayFile.model_validate_json(data, context=BULK_LOAD)
        except PydanticValidationError:
            parsed = None
        if parsed is not None and all(key == job.job_id for key, job in parsed.jobs.items()):
            self._check_version(path, parsed.version)
            return parsed.jobs
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._quarantine(path, f"not valid JSON: {exc}")
            return {}
        if not isinstance(raw, dict) or not isinstance(raw.get("jobs"), dict):
            self._quarantine(path, 'not a day file: expected an object with a "jobs" object')
            return {}
        self._check_version(path, raw.get("version"))
        jobs = {}
        for key, record in raw["jobs"].items():
            try:
                if not isinstance(record, dict):
                    raise JobValidationError("job", "must be a JSON object")
                record_id = record.get("job_id", key)
                if record_id != key:
                    raise JobValidationError("job_id", f"must match its key {key!r}")
                jobs[key] = ScheduledJob.from_dict({**record, "job_id": key})
            except JobValidationError as exc:
                self._reject(path, file_day, key, record, exc.message)
        return jobs

    def _check_version(self, path: Path, version: Any) -> None:
        if version != FORMAT_VERSION:
            raise StorageError(
                f"{path} has format version {version!r}; this scheduler reads version "
                f"{FORMAT_VERSION} (upgrade the scheduler or fix the file)"
            )

    def _reject(self, path: Path, day: date, key: str, record: Any, reason: str) -> None:
        logger.warning(
            "skipping invalid job record (kept in its file and copied to jobs/rejected/)",
            extra={"job_id": key, "file": path.name, "reason": reason},
        )
        self._rejected[day][key] = record
        copy = {"file": path.name, "job_id": key, "reason": reason, "record": record}
        try:
            self.rejected_dir.mkdir(parents=True, exist_ok=True)
            safe_key = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:80]
            write_atomic(
                self.rejected_dir / f"{path.stem}__{safe_key}.json",
                json.dumps(copy, ensure_ascii=False, indent=2).encode("utf-8") + b"\n",
            )
        except OSError as exc:
            logger.error("cannot copy rejected record: %s", exc, extra={"job_id": key})

    def _quarantine(self, path: Path, reason: str) -> None:
        stamp = self._clock().astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        try:
            os.replace(path, target)
            fsync_dir(path.parent)
        except OSError as exc:
            raise StorageError(f"cannot move corrupt file {path} aside: {exc}") from exc
        logger.error(
            "corrupt job file moved aside; the other files load",
            extra={"file": path.name, "moved_to": target.name, "reason": reason},
        )

    def _remove_stale_temp_files(self) -> None:
        for temp in self.jobs_dir.glob(f".*{TEMP_SUFFIX}"):
            logger.info("removing temp file left by an interrupted write: %s", temp.name)
            temp.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------

    def _day_contents(self, day: date, extra: Iterable[str]) -> tuple[Path, bytes | None]:
        """The file of ``day`` and its bytes (its jobs, ``extra`` jobs, kept rejected records).

        ``None`` bytes: the day has nothing left, so its file goes.
        """
        guests = [job_id for job_id in extra if job_id in self.jobs]
        if guests:  # rare (a job moving day): sort this once, without the cache
            ids = self._members.get(day, set()).union(guests)
            order = [job.job_id for job in sorted((self.jobs[i] for i in ids), key=file_order)]
            entries = [self._entry(self.jobs[i]) for i in order]
        else:
            entries = self._day_order(day).encoded(lambda i: self._entry(self.jobs[i]))
        rejected = self._rejected.get(day)
        if rejected:  # kept verbatim, unless a valid job of that id now lives in this day
            members = self._members.get(day, ())
            rejected = {k: v for k, v in rejected.items() if k not in members and k not in guests}
        path = self.path_for(day)
        if not entries and not rejected:
            return path, None
        if rejected:
            entries = entries + [encode_record(key, record) for key, record in rejected.items()]
        return path, document(day, entries)

    def _day_order(self, day: date) -> DayOrder:
        """The day's jobs in file order (scheduled_time, then id) with their entries, cached."""
        order = self._order.get(day)
        if order is None:
            jobs = self.jobs
            order = self._order[day] = DayOrder.build(
                self._members.get(day, ()), self._fragments.get, lambda i: file_order(jobs[i])
            )
        return order

    def _unorder(self, day: date, job_id: str) -> None:
        """Take ``job_id`` out of the day's cached file order (the cache goes if it is not there)."""
        order = self._order.get(day)
        if order is not None and not order.remove(job_id):
            del self._order[day]

    def _reorder(self, day: date, job_id: str) -> None:
        """Put ``job_id`` (already in ``jobs``) in its place in the day's cached file order.

        A bisection over the cached order, not a sort of the day: adding a job to a day of
        thousands stays cheap on the loop.
        """
        order = self._order.get(day)
        if order is not None:
            order.insert(job_id)

    def _entry(self, job: ScheduledJob) -> bytes:
        fragment = self._fragments.get(job.job_id)
        if fragment is None:
            fragment = self._fragments[job.job_id] = encode_entry(job)
        return fragment


def _newer(job: ScheduledJob, job_file: date, current: ScheduledJob, home: date) -> bool:
    """Whether a copy read from ``job_file`` beats the copy already held."""
    if job.updated_at != current.updated_at:
        return job.updated_at > current.updated_at
    return job_file == home


def _put_file(path: Path, data: bytes | None) -> int:
    """Write (or, for ``None``, remove) one day file; return 1 if the disk changed."""
    if data is None:
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1
    write_atomic(path, data, sync_dir=False)
    return 1
