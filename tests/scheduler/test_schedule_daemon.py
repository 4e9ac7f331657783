"""A real client against a running daemon: a cron schedule every minute fires, pauses,
resumes and is triggered, all seen only through the HTTP API."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.scheduler.test_processes import Daemon


@pytest.fixture
def api(tmp_path: Path):
    daemon = Daemon(tmp_path / "data")
    holder = daemon.wait_ready()
    token = (tmp_path / "data" / "api_token").read_text().strip()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{holder['api_port']}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    yield client
    client.close()
    code, _, err = daemon.terminate()
    assert code == 0, err


def _wait_for(client: httpx.Client, path: str, predicate, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        executions = client.get(path).json()["executions"]
        if predicate(executions):
            return executions
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout} s: {executions}")
        time.sleep(0.25)


def test_a_minutely_cron_schedule_fires_pauses_resumes_and_triggers(api: httpx.Client) -> None:
    made = api.post(
        "/api/v1/schedules",
        json={"name": "every-minute", "schedule_type": "cron", "cron_expression": "* * * * *",
              "timezone": "Asia/Ho_Chi_Minh", "target_command": "log", "command_payload": {"message": "tick"},
              "tags": ["probe"]},
        headers={"X-Created-By": "probe-client"},
    )
    assert made.status_code == 201, made.text
    schedule = made.json()
    sid = schedule["schedule_id"]
    assert schedule["created_by"] == "probe-client" and schedule["status"] == "active"
    first = datetime.fromisoformat(schedule["next_run_time"])
    assert first.utcoffset() == timedelta(hours=7) and first.second == 0 and first.microsecond == 0

    # it fires at the minute, and the run succeeds
    runs = f"/api/v1/schedules/{sid}/executions"
    fired = _wait_for(api, runs, lambda ex: any(e["status"] == "succeeded" for e in ex), timeout=75)
    (run,) = [e for e in fired if e["status"] == "succeeded"]
    assert run["triggered_by"] == "schedule" and datetime.fromisoformat(run["fire_time"]) == first
    assert api.get(f"/api/v1/executions/{run['execution_id']}").json()["job_id"] == run["execution_id"]

    paused = api.post(f"/api/v1/schedules/{sid}/pause", json={"reason": "maintenance"},
                      headers={"X-Performed-By": "probe-client"}).json()
    assert (paused["status"], paused["paused"], paused["next_run_time"]) == ("paused", True, None)
    assert paused["paused_reason"] == "maintenance"

    # a trigger runs now, paused or not
    triggered = api.post(f"/api/v1/schedules/{sid}/trigger", headers={"X-Triggered-By": "admin"})
    assert triggered.status_code == 202, triggered.text
    execution_id = triggered.json()["execution_id"]
    _wait_for(api, runs, lambda ex: any(e["execution_id"] == execution_id and e["status"] == "succeeded" for e in ex),
              timeout=15)
    assert api.get(f"/api/v1/executions/{execution_id}").json()["triggered_by"] == "trigger:admin"

    resumed = api.post(f"/api/v1/schedules/{sid}/resume").json()
    assert resumed["status"] == "active" and not resumed["paused"]
    after = datetime.fromisoformat(resumed["next_run_time"])
    assert after > first and after.second == 0

    listed = api.get("/api/v1/schedules", params={"tag": "probe"}).json()
    assert [s["schedule_id"] for s in listed["schedules"]] == [sid]
    stats = api.get(f"/api/v1/executions/stats/{sid}").json()
    assert stats["succeeded"] >= 2 and stats["success_rate"] == 1.0
    assert api.get("/api/v1/schedules/no-such-id").status_code == 404
    assert httpx.get(f"{api.base_url}/api/v1/schedules").status_code == 401


def test_daily_makes_its_schedule_through_a_running_daemon(tmp_path: Path) -> None:
    from tests.scheduler.test_processes import cli

    data_dir = tmp_path / "data"
    daemon = Daemon(data_dir)
    holder = daemon.wait_ready()
    try:
        first = cli(data_dir, "daily", "--at", "07:15", "--account", "kenh-a", "--json")
        again = cli(data_dir, "daily", "--at", "07:15", "--account", "kenh-a", "--json")
        assert first.returncode == again.returncode == 0, (first.stderr, again.stderr)
        assert [json.loads(r.stdout)["outcome"] for r in (first, again)] == ["created", "unchanged"]
        token = (data_dir / "api_token").read_text().strip()
        listed = httpx.get(f"http://127.0.0.1:{holder['api_port']}/api/v1/schedules",
                           params={"name": "daily-kenh-a"}, headers={"Authorization": f"Bearer {token}"}).json()
        (schedule,) = listed["schedules"]
        assert (schedule["cron_expression"], schedule["target_command"], schedule["created_by"]) == (
            "15 7 * * *", "pipeline.daily", "cli:daily")
    finally:
        code, _, err = daemon.terminate()
    assert code == 0, err
