"""ScheduleStore: every schedule in ``DATA_DIR/schedules.json``, written like the daily files.

The file is one UTF-8 JSON object a person can read, one schedule per line::

    {
      "version": 1,
      "schedules": {
        "<id>": {"name": "daily-default", "schedule_type": "cron", ...},
        ...
      }
    }

Writes replace it atomically and durably (``atomic_file.write_atomic``: temp file, fsync,
rename, fsync the folder), encoded and written on a worker thread so the loop never
waits on them; ``flush`` returns once every change made before it is on disk. A file that
cannot be parsed is moved aside (``schedules.json.corrupt-<timestamp>``) and reported, and
the daemon starts with no schedules rather than not at all; a record that does not
validate is skipped and reported, the others load, and it stays in the file word for word
at every rewrite (nothing is lost) until a person mends or removes it in the file.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .atomic_file import storage_error, write_atomic
from .day_file import join_entries
from .errors import JobValidationError, StorageError
from .schedule_model import SCHEDULE_FORMAT_VERSION, Schedule

__all__ = ["SCHEDULES_FILE", "ScheduleStore"]

logger = logging.getLogger(__name__)

SCHEDULES_FILE = "schedules.json"


class ScheduleStore:
    """The schedules by id, and their file.

    :param data_dir: the folder holding ``schedules.json``.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / SCHEDULES_FILE
        self.schedules: dict[str, Schedule] = {}
        self._records: dict[str, dict[str, Any]] = {}
        # id -> its encoded line, kept until its record changes; the ids in file order
        self._lines: dict[str, bytes] = {}
        self._ids: list[str] = []
        self._changes = 0
        self._written = 0
        self.version = 0
        """Bumped by every put and delete: readers cache what they derive from the set."""
        self._lock = asyncio.Lock()
        self.problems: list[str] = []
        """What the last load could not read (one line each)."""

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> dict[str, Schedule]:
        """Read the file (a missing one is empty); return the schedules by id."""
        self.schedules, self._records, self.problems = {}, {}, []
        self._lines, self._ids = {}, []
        self.version += 1
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self.schedules
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or not isinstance(document.get("schedules"), dict):
                raise ValueError("not an object with a 'schedules' object")
            version = document.get("version")
            if version != SCHEDULE_FORMAT_VERSION:
                raise ValueError(f"format version {version!r} (this daemon reads {SCHEDULE_FORMAT_VERSION})")
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(self.path, aside)
            self.problems.append(f"{self.path} could not be read ({exc}); moved to {aside.name}")
            logger.error("schedules file moved aside", extra={"path": str(aside), "reason": str(exc)})
            return self.schedules
        for schedule_id, record in document["schedules"].items():
            try:
                schedule = Schedule.from_dict({**record, "schedule_id": schedule_id})
            except (JobValidationError, TypeError) as exc:
                self.problems.append(f"schedule {schedule_id} skipped: {exc}")
                logger.error("schedule record skipped", extra={"schedule_id": schedule_id, "reason": str(exc)})
                self._records[schedule_id] = record  # kept as it is: written back word for word
                continue
            self.schedules[schedule_id] = schedule
            self._records[schedule_id] = record
        self._ids = sorted(self._records)
        self._adopt_lines(raw)
        return self.schedules

    def _adopt_lines(self, raw: bytes) -> None:
        """Keep the file's own lines as the encoded ones when the file is exactly what
        ``_document`` writes for these schedules (one per line, in id order), so the first
        write after a start encodes only what changed (all 10,000 lines cost the loop
        80 ms). Anything else (a hand-made layout, a skipped record) is encoded afresh."""
        rows = raw.split(b"\n")[3:-3]  # JSON text holds no raw newline: one row per line
        if len(rows) != len(self._ids):
            return
        lines: dict[str, bytes] = {}
        for schedule_id, row in zip(self._ids, rows):
            if row.endswith(b","):
                row = row[:-1]
            if not row.startswith(b'    "' + schedule_id.encode() + b'": {'):
                return
            lines[schedule_id] = row
        if _document(list(lines.values())) == raw:
            self._lines = lines

    # -- changing --------------------------------------------------------------------------

    def put(self, schedule: Schedule) -> None:
        """Insert or replace a schedule (durable at the next flush)."""
        schedule_id = schedule.schedule_id
        self.schedules[schedule_id] = schedule
        if schedule_id not in self._records:
            bisect.insort(self._ids, schedule_id)
        self._records[schedule_id] = schedule.to_dict()
        self._lines.pop(schedule_id, None)
        self._changes += 1
        self.version += 1

    def note_next(self, schedule_id: str, when: Any, key: str) -> None:
        """Keep a schedule's computed next fire in its record (durable at the next flush)."""
        record = self._records.get(schedule_id)
        if record is None:
            return
        text = None if when is None else when.isoformat()
        if record.get("next_fire_time") == text and record.get("next_fire_key") == key:
            return
        self._records[schedule_id] = {**record, "next_fire_time": text, "next_fire_key": key}
        self._lines.pop(schedule_id, None)
        self._changes += 1

    def delete(self, schedule_id: str) -> Schedule | None:
        """Remove a schedule (durable at the next flush); return it, or None."""
        if self._records.pop(schedule_id, None) is not None:
            index = bisect.bisect_left(self._ids, schedule_id)
            if index < len(self._ids) and self._ids[index] == schedule_id:
                del self._ids[index]
        self._lines.pop(schedule_id, None)
        removed = self.schedules.pop(schedule_id, None)
        self._changes += 1
        self.version += 1
        return removed

    @property
    def dirty(self) -> bool:
        return self._changes != self._written

    def _file_lines(self) -> list[bytes]:
        """Every schedule's line, in id order (on the caller's thread: records are the loop's).

        A line is encoded once and kept until its record changes, so a write after one
        schedule fired encodes one line, not all of them (10,000 schedules took a third of
        a second each time, holding the GIL the API needed).
        """
        lines, records, out = self._lines, self._records, []
        for schedule_id in self._ids:
            line = lines.get(schedule_id)
            if line is None:
                line = lines[schedule_id] = _line(schedule_id, records[schedule_id])
            out.append(line)
        return out

    def _write(self, lines: list[bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomic(self.path, _document(lines), mode=0o600)
        except OSError as exc:
            raise storage_error("write the schedules", self.path.parent, exc) from None

    def flush(self) -> None:
        """Write the file now if anything changed (blocking: the CLI's direct mode)."""
        if not self.dirty:
            return
        mark = self._changes
        self._write(self._file_lines())
        self._written = mark

    async def flush_async(self) -> None:
        """``flush`` with the write on a worker thread; returns once every earlier change is on disk."""
        async with self._lock:  # one write at a time, in the order asked
            if not self.dirty:
                return
            mark = self._changes
            lines = self._file_lines()  # bytes, never changed: the worker joins them as they are
            await asyncio.shield(asyncio.to_thread(self._write, lines))
            self._written = max(self._written, mark)


def _line(schedule_id: str, record: dict[str, Any]) -> bytes:
    """One schedule's line of the file: encoded by json's C encoder (``indent`` would take
    the pure-Python one, ten times slower) so the file reads and diffs schedule by schedule."""
    body = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
    return f"    {json.dumps(schedule_id)}: {body}".encode("utf-8")


def _document(lines: list[bytes]) -> bytes:
    head = f'{{\n  "version": {SCHEDULE_FORMAT_VERSION},\n  "schedules": {{'.encode()
    if not lines:
        return head + b"}\n}\n"
    return join_entries(head + b"\n", lines, b"\n  }\n}\n")  # 10,000 schedules: 10 MB, joined once
