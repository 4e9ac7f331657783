"""AuditLog: who changed which job or schedule, when, from what to what, as JSON lines.

Every change is one line appended to ``DATA_DIR/audit/audit_YYYY-MM-DD.jsonl`` (the day is
the local date, in the configured zone, of the change)::

    {"v": 1, "at": "2026-11-23T12:00:00Z", "actor": "alice", "action": "job.update",
     "target": "job", "id": "<job_id>", "before": {"status": "scheduled", ...},
     "after": {"status": "running", ...}, "changed": ["status", "updated_at", "started_at"]}

``action`` is ``job.add`` / ``job.update`` / ``job.remove`` for the job table (followed
through ``JobManager.observers``) and whatever the schedule service records
(``schedule.create``, ``schedule.pause``, ...). An add or a remove carries the whole
record (``before`` or ``after`` is null); an update carries the changed fields only, so the
loop's RUNNING and COMPLETED marks stay small. Every value goes through
``redaction.redact``: secrets (a worker's ``task_token``, an ``api_key``, a webhook URL)
become ``"[redacted]"``, strings past 2,000 characters are cut.

Durability and cost: ``record`` (and the job observer) reads the clock and the actor,
copies the record's fields and queues the line; it never blocks and never raises. One
writer thread per log redacts, serializes and appends the queued lines in the order
recorded, then ``os.fsync``s the file (a new file's folder too). ``await flush()`` returns
once every line recorded before it is fsynced: the API awaits it before answering, so an
acknowledged change has its audit line on disk. A failed write (read-only or full disk)
is logged once per kind of failure, the lines stay queued in order and are written again
(after 0.5 s, doubling up to 30 s, or at once when someone flushes); a ``flush`` waiting
for them raises the StorageError (DiskFullError on a full disk). The folder is created
0700, the files 0600.

Wiring (in ``Scheduler.__init__``, after ``self.manager`` is built)::

    self.audit = AuditLog(self.data_dir, self.zone, clock=clock)
    self.audit.attach(self.manager)        # every job change, with current_actor()
    self.companions.append(self.audit)     # start: the writer; stop: write what is left

and in the schedule service, for each change it makes::

    await scheduler.audit.record_async("schedule.pause", schedule_id, before=old, after=new)

Changes made before ``start`` (recovery at ``load``, the CLI working on the files) are
recorded too: the writer starts with the first line and ends after ``idle_seconds`` with
nothing to write; ``close()`` (or the process's exit) writes what is left. A change the
manager undoes after a failed write is two lines (a ``job.remove`` whose disk write failed
is followed by the ``job.add`` that puts the job back). ``read_audit`` reads the lines
back, newest first.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import copy
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .actor import clean_actor, current_actor
from .atomic_file import fsync_dir, storage_error
from .clock import Clock, local_date, utc_now
from .errors import JobValidationError, StorageError
from .models import ScheduledJob
from .redaction import MAX_STRING_CHARS, redact

if TYPE_CHECKING:
    from .job_manager import JobManager

__all__ = ["AUDIT_FORMAT_VERSION", "AuditLog", "read_audit"]

AUDIT_FORMAT_VERSION = 1
_FOLDER = "audit"
_FILE_PREFIX = "audit_"
_FILE_SUFFIX = ".jsonl"
_FILE_NAME = re.compile(r"^audit_(\d{4}-\d{2}-\d{2})\.jsonl$")
_MAX_ID_CHARS = 200

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Line:
    """One recorded change, queued for the writer (``data``: its bytes, once serialized)."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed: list[str] | None  # None: the writer works it out from before and after
    reduce: bool  # an update's before/after still hold every field: keep the changed ones
    data: bytes | None = None
    day: date | None = None


class AuditLog:
    """The audit trail of a data dir: one JSON line per change, fsynced by one writer thread.

    :param data_dir: the scheduler's data dir; lines go to ``data_dir/audit``.
    :param zone: the zone whose local dates name the day files (``Scheduler.zone``).
    :param clock: the wall clock (aware UTC); read once per line, when it is recorded.
    :param max_chars: strings longer than this are cut (see ``redaction.redact``).
    :param retry_seconds: the first wait before writing again after a failure (doubling,
        up to ``max_retry_seconds``).
    :param stop_timeout_seconds: how long ``close`` / ``stop`` wait for a failing disk
        before giving up on the lines still queued (they are logged as not written).
    :param idle_seconds: the writer thread ends after this long with nothing to write (and
        closes its file); the next line starts another.

    It is a ``Companion`` (``name``, ``start``, ``stop``) and its ``observe`` is a
    ``JobObserver``. ``record`` may be called from any thread.
    """

    name = "audit"

    def __init__(
        self,
        data_dir: Path | str,
        zone: tzinfo,
        *,
        clock: Clock = utc_now,
        max_chars: int = MAX_STRING_CHARS,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 30.0,
        stop_timeout_seconds: float = 10.0,
        idle_seconds: float = 30.0,
    ) -> None:
        self.audit_dir = Path(data_dir) / _FOLDER
        self.zone = zone
        self._clock = clock
        self.max_chars = max_chars
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.stop_timeout_seconds = stop_timeout_seconds
        self.idle_seconds = idle_seconds
        # shared with the writer thread: hold _cond
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Line] = []  # recorded, not yet on disk, in order
        self._seq = 0  # the last line recorded
        # the last line recorded by the current task (or thread): what flush(own=True) waits for
        self._own_last: contextvars.ContextVar[int] = contextvars.ContextVar(f"audit_own_last_{id(self)}", default=0)
        self._durable = 0  # the last line fsynced
        self._waiters: list[tuple[int, concurrent.futures.Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._closing = False  # leave once the queue is empty
        self._abandon = False  # leave now, even with lines queued
        self._retry_now = False  # a flush is waiting: do not wait out the backoff
        self.write_failure: str | None = None
        """Why the last write failed (None once one succeeded): for the health report."""
        # the writer thread's own
        self._fd: int | None = None
        self._fd_day: date | None = None
        self._dir_ready = False
        self._dir_synced: set[date] = set()  # day files whose folder entry is fsynced
        self._failure_kinds: set[tuple[str, int | None]] = set()

    # -- recording (any thread; the loop's) -----------------------------------------------

    def attach(self, manager: JobManager) -> None:
        """Follow ``manager``'s job table: every change becomes a ``job.*`` line."""
        if self.observe not in manager.observers:
            manager.observers.append(self.observe)

    def detach(self, manager: JobManager) -> None:
        """Stop following ``manager``'s job table."""
        if self.observe in manager.observers:
            manager.observers.remove(self.observe)

    def observe(self, before: ScheduledJob | None, after: ScheduledJob | None) -> None:
        """The ``JobObserver``: queue the line of one change to the job table (never raises).

        The records are the table's own and are never altered, but their JSON copies are
        taken here, on the caller's thread, so the line says what the change was.
        """
        try:
            if after is None and before is None:
                return
            if before is None:
                action, target_id = "job.add", after.job_id
                old, new = None, after.model_dump(mode="json")
                changed = list(new)
            elif after is None:
                action, target_id = "job.remove", before.job_id
                old, new = before.model_dump(mode="json"), None
                changed = list(old)
            else:
                changed = _changed_fields(before, after)
                if not changed:
                    return
                fields = set(changed)
                action, target_id = "job.update", after.job_id
                old = before.model_dump(mode="json", include=fields)
                new = after.model_dump(mode="json", include=fields)
            self._enqueue(action, "job", target_id, old, new, changed, None, reduce=False)
        except Exception:
            job = after or before
            logger.exception("could not record a job change in the audit trail",
                             extra={"job_id": getattr(job, "job_id", None)})

    def record(
        self,
        action: str,
        target_id: str,
        *,
        before: Mapping[str, Any] | BaseModel | None = None,
        after: Mapping[str, Any] | BaseModel | None = None,
        target: str | None = None,
        changed: list[str] | None = None,
        actor: str | None = None,
    ) -> None:
        """Queue the line of one change (never raises; ``await flush()`` to make it durable).

        :param action: what was done, ``<target>.<verb>``: ``schedule.create``,
            ``schedule.pause``, ``schedule.delete`` ...
        :param target_id: the id of what changed.
        :param before: the record before the change (None: it was created); a dict or a
            pydantic model, copied now.
        :param after: the record after the change (None: it was deleted).
        :param target: what kind of thing changed; default: ``action`` up to its dot.
        :param changed: the fields that changed; default: those whose values differ. When
            both ``before`` and ``after`` are given, only these fields are kept.
        :param actor: who made the change; default ``current_actor()``.
        """
        try:
            kind = target or action.partition(".")[0]
            old, new = _plain(before), _plain(after)
            fields = list(changed) if changed is not None else None
            who = clean_actor(actor) if actor is not None else None
            self._enqueue(action, kind, str(target_id), old, new, fields, who, reduce=True)
        except Exception:
            logger.exception("could not record a change in the audit trail", extra={"action": action})

    async def record_async(self, action: str, target_id: str, **fields: Any) -> None:
        """``record`` (same arguments), then ``flush``: return once the line is on disk.

        Raises StorageError if the disk refuses the line (it stays queued and is retried).
        """
        self.record(action, target_id, **fields)
        await self.flush()

    def _enqueue(
        self,
        action: str,
        target: str,
        target_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        changed: list[str] | None,
        actor: str | None,
        *,
        reduce: bool,
    ) -> None:
        who = actor or current_actor()
        with self._cond:  # the clock too: the lines' times follow their order
            self._seq += 1
            self._queue.append(_Line(self._seq, self._clock(), who, action, target, target_id[:_MAX_ID_CHARS],
                                     before, after, changed, reduce))
            self._own_last.set(self._seq)
            self._ensure_writer()
            self._cond.notify()

    # -- durability -----------------------------------------------------------------------

    async def flush(self, *, own: bool = False) -> None:
        """Return once every line recorded before this call is fsynced.

        ``own``: only the lines recorded so far by the calling task (its context), and
        those before them: what an API request awaits, so it does not also wait for the
        lines other tasks queue meanwhile (the loop's RUNNING and COMPLETED marks) to
        reach the disk in the writer's next batch. A line recorded in a task the caller
        started is not its own: such callers flush everything.

        Raises StorageError (DiskFullError on a full disk) if the writer's attempt to write
        them fails; they stay queued and are written again. The write goes on if the
        awaiting task is cancelled.
        """
        future = self._flush_future(self._own_last.get() if own else None)
        if future is not None:
            await asyncio.wrap_future(future)

    def flush_sync(self, timeout: float | None = None) -> None:
        """``flush`` for code off the loop (the CLI on the files); TimeoutError after ``timeout``."""
        future = self._flush_future()
        if future is not None:
            future.result(timeout)

    def _flush_future(self, upto: int | None = None) -> concurrent.futures.Future[None] | None:
        with self._cond:
            upto = self._seq if upto is None else upto
            if self._durable >= upto:
                return None
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._waiters.append((upto, future))
            self._retry_now = True
            self._ensure_writer()
            self._cond.notify()
            return future

    @property
    def pending(self) -> int:
        """How many recorded lines are not on disk yet."""
        with self._cond:
            return len(self._queue)

    # -- the companion ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer thread (a line recorded earlier has started it already)."""
        with self._cond:
            self._ensure_writer()

    async def stop(self) -> None:
        """Write what is queued (for up to ``stop_timeout_seconds`` on a failing disk), then
        end the writer thread, without blocking the loop."""
        await asyncio.to_thread(self.close)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, waiting up to ``timeout`` (default ``stop_timeout_seconds``)
        on a failing disk, then end the writer thread. A later ``record`` starts it again."""
        timeout = self.stop_timeout_seconds if timeout is None else timeout
        with self._cond:
            thread = self._thread
            if thread is None:
                return
            self._closing = True
            self._retry_now = True
            self._cond.notify_all()
        thread.join(timeout)
        if thread.is_alive():
            with self._cond:
                self._abandon = True
                self._cond.notify_all()
            thread.join(timeout=1.0)  # past a write still hanging in the kernel, give up on it
        with self._cond:
            left = len(self._queue)
            failed = []
            if self._thread is None or self._thread is thread:  # none a record has started meanwhile
                self._thread = None
                self._closing = self._abandon = False
                if left:
                    failed = self._fail_waiters(
                        StorageError(f"cannot write the audit trail in {self.audit_dir}: it was closed"))
                atexit.unregister(self._close_at_exit)
        if left:
            logger.error("audit lines not written when the audit trail closed",
                         extra={"audit_dir": str(self.audit_dir), "lines": left, "error": self.write_failure})
        for future, exc in failed:
            _resolve(future, exc)

    def _close_at_exit(self) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        """Start the writer unless it runs (hold ``_cond``); one at a time, so lines stay in order."""
        if self._thread is None or not self._thread.is_alive():
            self._closing = self._abandon = False
            self._start_writer()

    def _start_writer(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        # a daemon thread dies with the interpreter: write what is queued before that
        atexit.register(self._close_at_exit)

    def _run(self) -> None:
        delay = self.retry_seconds
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        if not self._cond.wait(self.idle_seconds) and not self._queue:
                            return self._leave()  # idle: the next line starts a writer again
                    if not self._queue or self._abandon:
                        return self._leave()
                    batch = list(self._queue)
                    self._retry_now = False
                error = self._attempt(batch)
                if error is None:
                    delay = self.retry_seconds
                    continue
                with self._cond:
                    self._cond.wait_for(lambda: self._retry_now or self._abandon, timeout=delay)
                    if self._abandon:
                        return self._leave()
                delay = min(delay * 2, self.max_retry_seconds)
        except BaseException:
            logger.exception("the audit writer stopped; the next line starts another")
            with self._cond:
                self._leave()
            raise

    def _leave(self) -> None:
        """The writer's last act (hold ``_cond``): after it, another writer may start at once."""
        self._close_fd()
        if self._thread is threading.current_thread():
            self._thread = None
            atexit.unregister(self._close_at_exit)

    def _attempt(self, batch: list[_Line]) -> Exception | None:
        """Write ``batch`` (the head of the queue); return the failure, if any."""
        try:
            self._write(batch)
        except Exception as exc:  # every failure: logged once per kind, retried, never raised
            self._dir_ready = False
            self._dir_synced.clear()
            self.write_failure = str(exc)
            with self._cond:
                left = len(self._queue)
            self._log_failure(exc, left)
            error = storage_error("write the audit trail", self.audit_dir, exc, disk_changed=False) \
                if isinstance(exc, OSError) else StorageError(f"cannot write the audit trail: {exc}")
            with self._cond:
                failed = self._fail_waiters(error)
            for future, waiter_error in failed:
                _resolve(future, waiter_error)
            return exc
        return None

    def _written(self, lines: list[_Line]) -> None:
        """``lines`` (the head of the queue) are fsynced: take them off, answer the flushes."""
        with self._cond:
            del self._queue[: len(lines)]
            self._durable = lines[-1].seq
            done = [future for seq, future in self._waiters if seq <= self._durable]
            self._waiters = [(seq, future) for seq, future in self._waiters if seq > self._durable]
        if self.write_failure is not None:
            logger.warning("audit trail writes resumed", extra={"audit_dir": str(self.audit_dir),
                                                                "lines": len(lines)})
            self.write_failure = None
            self._failure_kinds.clear()
        for future in done:
            _resolve(future, None)

    def _fail_waiters(self, error: StorageError) -> list[tuple[concurrent.futures.Future[None], Exception]]:
        """Take every waiter with a copy of ``error`` to raise (hold ``_cond``; resolve outside)."""
        failed: list[tuple[concurrent.futures.Future[None], Exception]] = [
            (future, copy.copy(error)) for _, future in self._waiters
        ]
        self._waiters = []
        return failed

    def _log_failure(self, exc: Exception, lines: int) -> None:
        kind = (type(exc).__name__, getattr(exc, "errno", None))
        if kind in self._failure_kinds:
            return
        self._failure_kinds.add(kind)
        if isinstance(exc, OSError):
            logger.error("cannot write the audit trail; the lines are kept and written again",
                         extra={"audit_dir": str(self.audit_dir), "error": str(exc), "lines": lines})
        else:
            logger.exception("cannot write the audit trail; the lines are kept and written again",
                             extra={"audit_dir": str(self.audit_dir), "lines": lines})

    def _write(self, batch: list[_Line]) -> None:
        for line in batch:
            if line.data is None:
                line.day = local_date(line.at, self.zone)
                line.data = self._serialize(line)
        if not self._dir_ready:
            self._prepare_dir()
        start = 0
        while start < len(batch):  # one append and one fsync per day in the batch
            day = batch[start].day
            end = start
            while end < len(batch) and batch[end].day == day:
                end += 1
            self._append(day, b"".join(line.data for line in batch[start:end]))
            self._written(batch[start:end])  # durable now: a later day's failure must not repeat them
            start = end

    def _prepare_dir(self) -> None:
        folder = self.audit_dir
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_dir(folder.parent)
        if folder.stat().st_mode & 0o777 != 0o700:
            folder.chmod(0o700)
        self._dir_ready = True

    def _append(self, day: date, data: bytes) -> None:
        fd = self._open(day)
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if day not in self._dir_synced:  # a new file: its name must survive a crash too
                fsync_dir(self.audit_dir)
                self._dir_synced.add(day)
        except BaseException:
            try:  # no half line left behind for the retry to follow
                os.ftruncate(fd, start)
            except OSError:
                pass
            self._close_fd()
            raise

    def _open(self, day: date) -> int:
        if self._fd is not None and self._fd_day == day:
            return self._fd
        self._close_fd()
        fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o777 != 0o600:
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._fd_day = fd, day
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._fd_day = self._fd, None, None
            try:
                os.close(fd)
            except OSError:
                pass

    def _serialize(self, line: _Line) -> bytes:
        before, after, changed = line.before, line.after, line.changed
        if before is not None and after is not None and line.reduce:
            if changed is None:
                changed = [key for key in {**before, **after} if before.get(key) != after.get(key)
                           or (key in before) != (key in after)]
            before = {key: before[key] for key in changed if key in before}
            after = {key: after[key] for key in changed if key in after}
        elif changed is None:
            changed = list(after if after is not None else before or {})
        entry = {
            "v": AUDIT_FORMAT_VERSION,
            "at": _iso(line.at),
            "actor": line.actor,
            "action": line.action,
            "target": line.target,
            "id": line.target_id,
            "before": redact(before, max_chars=self.max_chars),
            "after": redact(after, max_chars=self.max_chars),
            "changed": [str(name) for name in changed],
        }
        try:
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError) as exc:  # e.g. a cycle: keep who, when and what, at least
            logger.error("an audit line could not be serialized; kept without its records",
                         extra={"action": line.action, "error": str(exc)})
            entry.update(before=None, after=None, error=f"records not serializable: {exc}")
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
        return (text + "\n").encode("utf-8")

    def path_for(self, day: date) -> Path:
        """The file of ``day``'s lines."""
        return self.audit_dir / f"{_FILE_PREFIX}{day.isoformat()}{_FILE_SUFFIX}"


def read_audit(
    data_dir: Path | str,
    day: date | str | None = None,
    *,
    target_id: str | None = None,
    target: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The audit lines of ``data_dir``, newest first, at most ``limit``.

    :param day: one local day (a date or ``YYYY-MM-DD``); default: every day, read from
        the newest file back only as far as ``limit`` needs.
    :param target_id: only the lines about this job or schedule id.
    :param target: only the lines about this kind of thing (``job``, ``schedule``).

    A line that does not parse (a crash cut it short) is skipped with a warning; a line
    still being written (no newline yet) is skipped silently. Raises JobValidationError
    for a bad ``day`` or ``limit``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise JobValidationError("limit", "must be a positive integer")
    folder = Path(data_dir) / _FOLDER
    if day is not None:
        paths = [folder / f"{_FILE_PREFIX}{_as_day(day).isoformat()}{_FILE_SUFFIX}"]
    elif folder.is_dir():
        paths = sorted((p for p in folder.iterdir() if _FILE_NAME.match(p.name)), reverse=True)
    else:
        paths = []
    found: list[dict[str, Any]] = []
    for path in paths:
        for entry in reversed(_read_lines(path)):
            if target_id is not None and entry.get("id") != target_id:
                continue
            if target is not None and entry.get("target") != target:
                continue
            found.append(entry)
            if len(found) >= limit:
                return found
    return found


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    pieces = data.split(b"\n")
    pieces.pop()  # after the last newline: empty, or a line still being written
    entries = []
    for number, piece in enumerate(pieces, start=1):
        if not piece.strip():
            continue
        try:
            entry = json.loads(piece)
        except ValueError:
            logger.warning("skipping an audit line that does not parse",
                           extra={"path": str(path), "line": number})
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _as_day(day: date | str) -> date:
    if isinstance(day, datetime):
        raise JobValidationError("day", "must be a date like 2026-11-24, not an instant")
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(str(day).strip())
    except ValueError:
        raise JobValidationError("day", f"must be a date like 2026-11-24, got {day!r}") from None


def _changed_fields(before: ScheduledJob, after: ScheduledJob) -> list[str]:
    """The fields whose values differ, in record order, then the extra fields."""
    old, new = before.__dict__, after.__dict__
    changed = [name for name, value in new.items() if value is not old[name] and value != old[name]]
    old_extra, new_extra = before.__pydantic_extra__ or {}, after.__pydantic_extra__ or {}
    if old_extra or new_extra:
        for name in {**old_extra, **new_extra}:
            value = new_extra.get(name, _MISSING)
            earlier = old_extra.get(name, _MISSING)
            if value is not earlier and value != earlier:
                changed.append(name)
    return changed


_MISSING = object()


def _plain(value: Any) -> Any:
    """A JSON-like copy of ``value``: models dumped, instants as ISO, enums as values."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    return str(value)


def _iso(instant: datetime) -> str:
    """Aware UTC ISO-8601 with ``Z``, as the job files write their instants."""
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _resolve(future: concurrent.futures.Future[None], error: Exception | None) -> None:
    if future.done():  # its awaiting task was cancelled
        return
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass
