"""increment-counter (atomic, concurrent processes) and handle-error, with the seed's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from services.pipeline.stages import counter, handle_error
from tests.pipeline.stage_context import RecordingContext

NOW = datetime(2026, 2, 7, 1, 0, tzinfo=timezone.utc)  # 08:00 on 2026-02-07 in Vietnam


def test_increment_counter_returns_the_seeds_json(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    with freeze_time(NOW):
        first = counter.handler({"job_id": "job-abc123"}, RecordingContext())
        second = counter.handler({"job_id": "job-def456"}, RecordingContext())
    assert first == {"daily_count": 1, "date": "2026-02-07", "job_id": "job-abc123"}
    assert second == {"daily_count": 2, "date": "2026-02-07", "job_id": "job-def456"}
    stored = json.loads((data_dir / "counters.json").read_text())
    assert stored == {"version": 1, "2026-02-07": {"count": 2, "updated_at": "2026-02-07T01:00:00+00:00"}}


def test_the_counter_day_is_the_vietnam_day(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    with freeze_time(datetime(2026, 2, 7, 17, 0, tzinfo=timezone.utc)):  # 00:00 Feb 8 in Vietnam
        assert counter.handler({"job_id": "j"}, RecordingContext())["date"] == "2026-02-08"


def test_concurrent_increments_from_four_processes_all_count(data_dir: Path) -> None:
    script = (
        "import sys; from datetime import date, datetime, timezone; from pathlib import Path;"
        "from services.pipeline.stages.counter import increment\n"
        "for _ in range(25): increment(Path(sys.argv[1]), date(2026, 2, 7), datetime.now(timezone.utc))"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(data_dir)]) for _ in range(4)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    assert counter.read_count(data_dir, datetime(2026, 2, 7).date()) == 100


def test_an_unversioned_counters_file_from_before_is_read_and_kept(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    old = {
        "2026-02-05": {"count": 3, "updated_at": "2026-02-05T10:00:00+00:00"},
        "2026-02-06": {"count": 5, "updated_at": "2026-02-06T10:00:00+00:00"},
    }
    (data_dir / "counters.json").write_text(json.dumps(old, indent=2) + "\n")
    assert counter.read_count(data_dir, datetime(2026, 2, 6).date()) == 5
    assert counter.read_counters(data_dir) == old
    assert counter.increment(data_dir, datetime(2026, 2, 6).date(), NOW) == 6
    assert counter.increment(data_dir, datetime(2026, 2, 7).date(), NOW) == 1
    stored = json.loads((data_dir / "counters.json").read_text())
    assert list(stored) == ["version", "2026-02-05", "2026-02-06", "2026-02-07"]  # dates in order
    assert stored["version"] == 1 and stored["2026-02-05"] == old["2026-02-05"]
    assert stored["2026-02-06"] == {"count": 6, "updated_at": NOW.isoformat()}


def test_a_counters_file_of_a_newer_version_is_refused(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    newer = '{"version": 2, "days": {"2026-02-07": {"count": 4}}}'
    (data_dir / "counters.json").write_text(newer)
    with pytest.raises(
        ValueError, match="counters.json has format version 2; this scheduler reads version 1"
    ):
        counter.read_count(data_dir, datetime(2026, 2, 7).date())
    with pytest.raises(ValueError, match="format version 2"):
        counter.increment(data_dir, datetime(2026, 2, 7).date(), NOW)
    assert (data_dir / "counters.json").read_text() == newer


def test_handle_error_takes_and_returns_the_seeds_json() -> None:
    event = {
        "job_id": "job-abc123",
        "error": {"Error": "States.TaskFailed", "Cause": '{"errorMessage": "Timeout"}'},
        "state": "GenerateScript",
        "execution_id": "arn:aws:states:us-east-1:123:execution:manga-pipeline:abc",
    }
    context = RecordingContext(lambda: NOW)
    expected = {"job_id": "job-abc123", "status": "failed", "error_logged": True}
    assert handle_error.handler(event, context) == expected
    assert context.updates == [
        (
            "job-abc123",
            {
                "stage": "failed",
                "error_message": '{"errorMessage": "Timeout"}',
                "failed_at": "2026-02-07T01:00:00+00:00",
                "failed_state": "GenerateScript",
                "failed_error": "States.TaskFailed",
            },
        )
    ]


def test_handle_error_without_a_job_id_is_refused() -> None:
    with pytest.raises(ValueError, match="needs the job_id"):
        handle_error.handler({"error": {}, "state": "FetchManga"}, RecordingContext(lambda: NOW))
