"""ExecutionHistory: one record per run of a schedule, in daily files a person can read.

A run (an *execution*) is one fire of a schedule, or one trigger or backfill of it: the
job it made, its fire time, when it started and ended, how it ended, who asked for it.
Fires that did not run (misfired after downtime, or coalesced away) get a record too.

Files: ``DATA_DIR/executions/executions_YYYY-MM-DD.jsonl``, the day being the fire's local
date in the schedule's zone, one JSON line per change of a record (created, running,
ended), each line carrying ``"v": 1`` and the record's fields; a reader folds the lines of
one id in order (later keys win). Appending keeps a change one small write however long
the day is, and the files stay readable with ``tail`` or ``jq``. Lines are appended and
fsynced by one writer thread, in the order recorded; ``flush`` waits for them.

An execution's id is its job's id, ``<schedule_id>-<YYYYMMDDTHHMMSS>`` (the fire's local
wall-clock time, so one wall-clock fire is one execution; a trigger adds ``-t<4 hex>``),
so the id names the day file that holds it: ``get`` reads one day, a listing reads days
newest first and stops when its page is full, and the stats read the days of their window.
Recently read days are kept in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .atomic_file import fsync_dir

__all__ = ["EXECUTION_FORMAT_VERSION", "ExecutionHistory", "execution_day", "percentile"]

_Line = tuple[str, str, tuple[date, int]]
"""A line for the writer: its day file's name, the JSON line, and its key (day, order)."""

logger = logging.getLogger(__name__)

EXECUTION_FORMAT_VERSION = 1
_DAY_FILE = re.compile(r"^executions_(\d{4}-\d{2}-\d{2})\.jsonl$")
_ID_DAY = re.compile(r"^[0-9a-f-]{36}-(\d{4})(\d{2})(\d{2})T")
CACHED_DAYS = 16
RETRY_SECONDS = 2.0
"""While the folder refuses writes, how often the writer tries the waiting lines again."""


def execution_day(execution_id: str) -> date | None:
    """The day file of an execution, read from its id; None if the id has no such shape."""
    match = _ID_DAY.match(execution_id)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` quantile of ``values`` (nearest rank), or None for none."""
    if not values:
        return None
    ordered = sorted(values)
    # nearest rank: the ceil(fraction * n)-th value (rounded first: 0.07 * 100 is 7.000000000000001)
    rank = max(0, min(len(ordered) - 1, math.ceil(round(fraction * len(ordered), 9)) - 1))
    return ordered[rank]


class _Appender(threading.Thread):
    """The one thread that appends lines to the day files and fsyncs them."""

    def __init__(
        self, folder: Path, written: Callable[[list[tuple[date, int]]], None], pending: list[_Line]
    ) -> None:
        super().__init__(name="execution-history-writer", daemon=True)
        self.folder = folder
        self.lines: queue.SimpleQueue[_Line | threading.Event | None] = queue.SimpleQueue()
        self.failure: str | None = None
        self.written = written
        """Called (on this thread) with the keys of the lines just appended and fsynced."""
        self.pending = pending
        """Lines a failed write left, oldest first: written before any newer one (shared with
        the next writer, should this one end with them)."""

    def run(self) -> None:
        while True:
            wait = RETRY_SECONDS if self.pending else None  # lines waiting: try again that often
            try:
                item: _Line | threading.Event | None = self.lines.get(timeout=wait)
            except queue.Empty:
                item = threading.Event()  # nothing new: a mark nobody waits on, to retry
            batch: list[_Line] = self.pending[:]
            self.pending.clear()
            marks: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    marks.append(item)
                else:
                    batch.append(item)
                try:
                    item = self.lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._append(batch)
            for mark in marks:
                mark.set()
            if stop:
                return

    def _append(self, batch: list[_Line]) -> None:
        by_file: dict[str, list[str]] = {}
        for name, line, _ in batch:
            by_file.setdefault(name, []).append(line)
        try:
            created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name, lines in by_file.items():
                path = self.folder / name
                new = not path.exists()
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, "".join(lines).encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if new:
                    created = True
            if created:
                fsync_dir(self.folder)
            if self.failure is not None:
                logger.info("execution history writable again", extra={"folder": str(self.folder)})
            self.failure = None
            self.written([key for _, _, key in batch])
        except OSError as exc:
            if self.failure is None:
                logger.error(
                    "cannot write the execution history; records are kept in memory and retried",
                    extra={"folder": str(self.folder), "error": exc.strerror or str(exc)},
                )
            self.failure = exc.strerror or str(exc)
            self.pending[:0] = batch  # retried first, in their order


class ExecutionHistory:
    """The execution records, by day.

    :param data_dir: the data dir (files go to ``data_dir/executions``).
    """

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "executions"
        self._days: OrderedDict[date, dict[str, dict[str, Any]]] = OrderedDict()
        self._writer: _Appender | None = None
        self._pending: list[_Line] = []
        self._seq = 0
        self._unwritten: dict[date, dict[int, dict[str, Any]]] = {}
        """Records handed to the writer and not yet on disk, by day and order: a day read
        from its file meanwhile folds them in, so a change is in view at once."""
        self._unwritten_lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------

    def _appender(self) -> _Appender:
        if self._writer is None or not self._writer.is_alive():
            self._writer = _Appender(self.folder, self._written, self._pending)
            self._writer.start()
        return self._writer

    def record(self, day: date, record: dict[str, Any]) -> dict[str, Any]:
        """Add or change the record ``record["execution_id"]`` of ``day``; return it whole.

        The change is in memory at once and on disk after the writer's next append
        (``flush`` waits for it). ``record`` holds the changed keys, or all of them.
        """
        execution_id = record["execution_id"]
        line = json.dumps({"v": EXECUTION_FORMAT_VERSION, **record}, ensure_ascii=False, separators=(",", ":"))
        writer = self._appender()
        self._seq += 1
        with self._unwritten_lock:
            self._unwritten.setdefault(day, {})[self._seq] = dict(record)
        writer.lines.put((f"executions_{day.isoformat()}.jsonl", line + "\n", (day, self._seq)))
        held = self._days.get(day)
        if held is not None:
            merged = {**held.get(execution_id, {}), **record}
            held[execution_id] = merged
            return merged
        return dict(record)

    def _written(self, keys: list[tuple[date, int]]) -> None:
        with self._unwritten_lock:
            for day, seq in keys:
                held = self._unwritten.get(day)
                if held is not None:
                    held.pop(seq, None)
                    if not held:
                        del self._unwritten[day]

    async def flush(self) -> None:
        """Wait until every record made before the call is appended and fsynced."""
        if self._writer is None:
            return
        mark = threading.Event()
        self._writer.lines.put(mark)
        await asyncio.to_thread(mark.wait, 30)

    def close(self) -> None:
        """Write what is queued and end the writer thread."""
        if self._writer is not None and self._writer.is_alive():
            self._writer.lines.put(None)
            self._writer.join(timeout=30)
        self._writer = None

    @property
    def write_failure(self) -> str | None:
        return None if self._writer is None else self._writer.failure

    # -- reading ---------------------------------------------------------------------------

    def days(self) -> list[date]:
        """The days that have a file, newest first."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.folder):
                match = _DAY_FILE.match(name)
                if match:
                    with contextlib.suppress(ValueError):
                        found.append(date.fromisoformat(match[1]))
        found.extend(day for day in self._days if day not in found)
        return sorted(set(found), reverse=True)

    def day(self, day: date) -> dict[str, dict[str, Any]]:
        """The records of ``day`` by id (read once, then kept while recent)."""
        held = self._days.get(day)
        if held is not None:
            self._days.move_to_end(day)
            return held
        records: dict[str, dict[str, Any]] = {}
        with self._unwritten_lock:  # taken before the file is read: a line written meanwhile is in both
            unwritten = sorted(self._unwritten.get(day, {}).items())
        path = self.folder / f"executions_{day.isoformat()}.jsonl"
        with contextlib.suppress(FileNotFoundError):
            with path.open(encoding="utf-8") as handle:
                for number, text in enumerate(handle, 1):
                    try:
                        line = json.loads(text)
                        execution_id = line["execution_id"]
                    except (ValueError, KeyError, TypeError):
                        if text.strip():  # a torn last line after a crash: skipped
                            logger.warning("unreadable history line skipped", extra={"path": str(path), "line": number})
                        continue
                    line.pop("v", None)
                    records[execution_id] = {**records.get(execution_id, {}), **line}
        # lines recorded but not yet written (the writer is behind): not lost from view. Folded
        # last, in order, they give what the file will hold (a line in both folds to the same)
        for _, record in unwritten:
            records[record["execution_id"]] = {**records.get(record["execution_id"], {}), **record}
        self._days[day] = records
        while len(self._days) > CACHED_DAYS:
            self._days.popitem(last=False)
        return records

    def get(self, execution_id: str) -> dict[str, Any] | None:
        """One record by id, or None."""
        day = execution_day(execution_id)
        if day is None:
            return None
        return self.day(day).get(execution_id)

    def list(
        self,
        *,
        schedule_id: str | None = None,
        status: str | None = None,
        triggered_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: date | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Records newest fire first, filtered; and whether more follow the page."""
        wanted = offset + limit
        found: list[dict[str, Any]] = []
        for day in self.days():
            if since is not None and day < since:
                break
            records = [
                record
                for record in self.day(day).values()
                if (schedule_id is None or record.get("schedule_id") == schedule_id)
                and (status is None or record.get("status") == status)
                and (triggered_by is None or record.get("triggered_by") == triggered_by)
            ]
            records.sort(key=lambda r: (r.get("fire_time") or "", r["execution_id"]), reverse=True)
            found.extend(records)
            if len(found) > wanted:
                break
        return found[offset:wanted], len(found) > wanted

    def stats(self, schedule_id: str, *, today: date, days: int = 30) -> dict[str, Any]:
        """Counts by status, success rate and p50/p95 duration of a schedule's runs over ``days``."""
        since = today - timedelta(days=days - 1)
        counts: dict[str, int] = {}
        durations: list[float] = []
        for day in self.days():
            if day < since:
                break
            for record in self.day(day).values():
                if record.get("schedule_id") != schedule_id:
                    continue
                state = record.get("status", "unknown")
                counts[state] = counts.get(state, 0) + 1
                if isinstance(record.get("duration_seconds"), (int, float)):
                    durations.append(float(record["duration_seconds"]))
        ended = counts.get("succeeded", 0) + counts.get("failed", 0)
        return {
            "schedule_id": schedule_id,
            "window_days": days,
            "since": since.isoformat(),
            "total": sum(counts.values()),
            "counts": dict(sorted(counts.items())),
            "succeeded": counts.get("succeeded", 0),
            "failed": counts.get("failed", 0),
            "misfired": counts.get("misfired", 0),
            "success_rate": None if ended == 0 else round(counts.get("succeeded", 0) / ended, 4),
            "duration_p50_seconds": percentile(durations, 0.50),
            "duration_p95_seconds": percentile(durations, 0.95),
        }


def fire_instant(record: dict[str, Any]) -> datetime | None:
    """The record's fire time as an aware datetime."""
    text = record.get("fire_time")
    return datetime.fromisoformat(text) if isinstance(text, str) else None
