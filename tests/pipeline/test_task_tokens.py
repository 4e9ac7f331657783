"""Task tokens: the local transport's files and the pure rule WaitFor* applies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.pipeline.errors import HeartbeatTimeout, StateTimeout, TaskFailed
from services.pipeline.tasks.task_tokens import LocalTransport, TaskReport, Waiting, judge, mint_token

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def look(report: TaskReport, seconds: float, heartbeat: float | None = 300, timeout: float | None = 14400):
    return judge(report, started=T0, now=at(seconds), heartbeat_seconds=heartbeat, timeout_seconds=timeout)


def test_a_fresh_task_waits_until_its_first_heartbeat_is_due() -> None:
    assert look(TaskReport(None, None), 0) == Waiting(recheck_seconds=300)
    with pytest.raises(HeartbeatTimeout, match="no heartbeat for 300 s"):
        look(TaskReport(None, None), 300)


def test_each_heartbeat_moves_the_deadline() -> None:
    report = TaskReport(last_heartbeat=at(250), result=None)
    assert look(report, 500) == Waiting(recheck_seconds=50)
    with pytest.raises(HeartbeatTimeout):
        look(report, 550)


def test_timeout_applies_even_while_heartbeats_arrive() -> None:
    report = TaskReport(last_heartbeat=at(14390), result=None)
    with pytest.raises(StateTimeout, match="longer than 14400 s"):
        look(report, 14400)
    assert look(TaskReport(at(14200), None), 14350) == Waiting(recheck_seconds=50)


def test_success_returns_the_workers_output_even_past_the_deadline() -> None:
    report = TaskReport(None, {"status": "succeeded", "output": {"job_id": "j", "status": "completed"}})
    assert look(report, 99999) == {"job_id": "j", "status": "completed"}


def test_failure_raises_the_workers_error_name_and_cause() -> None:
    report = TaskReport(at(10), {"status": "failed", "error": "YouTubeQuotaError", "cause": "quotaExceeded"})
    with pytest.raises(TaskFailed, match="quotaExceeded") as caught:
        look(report, 20)
    assert caught.value.name == "YouTubeQuotaError"


def test_no_heartbeat_setting_means_only_the_timeout_counts() -> None:
    assert look(TaskReport(None, None), 200, heartbeat=None, timeout=300) == Waiting(recheck_seconds=100)
    with pytest.raises(StateTimeout):
        look(TaskReport(None, None), 300, heartbeat=None, timeout=300)


def test_local_transport_round_trip(tmp_path: Path) -> None:
    transport = LocalTransport(tmp_path / "tasks")
    token = mint_token()
    folder = transport.open(token)
    assert transport.report(token) == TaskReport(None, None)
    transport.heartbeat(token, at(5))
    assert transport.report(token).last_heartbeat == at(5)
    transport.succeed(token, {"job_id": "j", "video": "Chương 1.mp4"}, at(9))
    transport.fail(token, "RenderError", "too late", at(10))  # the first result wins
    result = transport.report(token).result
    assert result == {
        "status": "succeeded",
        "output": {"job_id": "j", "video": "Chương 1.mp4"},
        "at": at(9).isoformat(),
    }
    assert "Chương" in (folder / "result.json").read_text(encoding="utf-8")
    transport.close(token)
    assert not folder.exists()


def test_local_transport_failure_result(tmp_path: Path) -> None:
    transport = LocalTransport(tmp_path)
    transport.open("tok")
    transport.fail("tok", "UploadError", "HTTP 500", at(1))
    assert json.loads((tmp_path / "tok" / "result.json").read_text())["error"] == "UploadError"


def test_result_json_carries_its_version(tmp_path: Path) -> None:
    transport = LocalTransport(tmp_path)
    transport.open("tok")
    transport.succeed("tok", {"job_id": "j"}, at(1))
    stored = json.loads((tmp_path / "tok" / "result.json").read_text(encoding="utf-8"))
    assert stored == {"version": 1, "status": "succeeded", "output": {"job_id": "j"}, "at": at(1).isoformat()}
    del stored["version"]
    assert transport.report("tok").result == stored  # the worker's result, not the file's format


def test_a_result_written_before_versions_is_still_read(tmp_path: Path) -> None:
    transport = LocalTransport(tmp_path)
    transport.open("tok")  # a worker of the release before, still running across the upgrade
    old = {"status": "failed", "error": "UploadError", "cause": "HTTP 500", "at": at(2).isoformat()}
    (tmp_path / "tok" / "result.json").write_text(json.dumps(old, indent=2), encoding="utf-8")
    assert transport.report("tok").result == old
    with pytest.raises(TaskFailed, match="HTTP 500"):
        look(transport.report("tok"), 3)


def test_a_result_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    transport = LocalTransport(tmp_path)
    transport.open("tok")
    (tmp_path / "tok" / "result.json").write_text('{"version": 2, "outcome": "ok"}')
    with pytest.raises(ValueError, match="result.json has format version 2; this scheduler reads version 1"):
        transport.report("tok")


@pytest.mark.parametrize("token", ["", "../etc", "a/b", "tok en"])
def test_a_token_cannot_escape_the_tasks_folder(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValueError, match="not a task token"):
        LocalTransport(tmp_path).task_dir(token)


def test_minted_tokens_are_distinct_and_file_safe() -> None:
    tokens = {mint_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(all(c.isalnum() or c in "-_" for c in t) for t in tokens)
