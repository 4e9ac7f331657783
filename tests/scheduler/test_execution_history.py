"""ExecutionHistory's writer: lines a refused write left are written later, in order."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest

from services.scheduler import execution_history
from services.scheduler.execution_history import ExecutionHistory


def test_lines_a_refused_write_left_are_written_first_once_the_folder_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution_history, "RETRY_SECONDS", 0.05)
    history = ExecutionHistory(tmp_path)
    history.folder.parent.mkdir(parents=True, exist_ok=True)
    history.folder.write_text("not a folder")  # mkdir fails: the write is refused
    day = date(2026, 12, 2)
    for n in range(3):
        history.record(day, {"execution_id": f"e{n}", "status": "scheduled"})
    deadline = time.monotonic() + 5
    while history.write_failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert history.write_failure is not None
    history.folder.unlink()  # the folder can be made now: the writer retries by itself
    path = history.folder / "executions_2026-12-02.jsonl"
    while not (path.exists() and len(path.read_text().splitlines()) == 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), "the waiting lines were not retried without a new record"
    history.record(day, {"execution_id": "e3", "status": "scheduled"})
    history.close()
    assert [json.loads(line)["execution_id"] for line in path.read_text().splitlines()] == ["e0", "e1", "e2", "e3"]
    assert history.write_failure is None
