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
validate is skipped and reported, the others load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .atomic_file import storage_error, write_atomic
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
                continue
            self.schedules[schedule_id] = schedule
            self._records[schedule_id] = record
        return self.schedules

    # -- changing --------------------------------------------------------------------------

    def put(self, schedule: Schedule) -> None:
        """Insert or replace a schedule (durable at the next flush)."""
        self.schedules[schedule.schedule_id] = schedule
        self._records[schedule.schedule_id] = schedule.to_dict()
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
        self._changes += 1

    def delete(self, schedule_id: str) -> Schedule | None:
        """Remove a schedule (durable at the next flush); return it, or None."""
        self._records.pop(schedule_id, None)
        removed = self.schedules.pop(schedule_id, None)
        self._changes += 1
        self.version += 1
        return removed

    @property
    def dirty(self) -> bool:
        return self._changes != self._written

    def _encode(self, records: dict[str, dict[str, Any]]) -> bytes:
        """The file: one schedule per line, so it reads (and diffs) schedule by schedule,
        and each line is encoded by json's C encoder (``indent`` takes the pure-Python one,
        ten times slower: 10,000 schedules took most of a second, holding the GIL)."""
        lines = [
            f"    {json.dumps(schedule_id)}: {json.dumps(record, ensure_ascii=False, separators=(', ', ': '))}"
            for schedule_id, record in sorted(records.items())
        ]
        body = ",\n".join(lines)
        text = f'{{\n  "version": {SCHEDULE_FORMAT_VERSION},\n  "schedules": {{\n{body}\n  }}\n}}\n' if lines else (
            f'{{\n  "version": {SCHEDULE_FORMAT_VERSION},\n  "schedules": {{}}\n}}\n'
        )
        return text.encode("utf-8")

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomic(self.path, self._encode(records), mode=0o600)
        except OSError as exc:
            raise storage_error("write the schedules", self.path.parent, exc) from None

    def flush(self) -> None:
        """Write the file now if anything changed (blocking: the CLI's direct mode)."""
        if not self.dirty:
            return
        mark = self._changes
        self._write(dict(self._records))
        self._written = mark

    async def flush_async(self) -> None:
        """``flush`` on a worker thread; returns once every earlier change is on disk."""
        async with self._lock:  # one write at a time, in the order asked
            if not self.dirty:
                return
            mark = self._changes
            snapshot = dict(self._records)  # records are replaced, never changed: a shallow copy holds
            await asyncio.shield(asyncio.to_thread(self._write, snapshot))
            self._written = max(self._written, mark)
