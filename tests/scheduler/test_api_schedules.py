"""Every schedules and executions route with its answers and error codes, in-process."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from services.scheduler import Scheduler
from services.scheduler.api import create_app
from services.scheduler.audit import read_audit
from services.scheduler.schedules import ScheduleDefaults

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOG = {"schedule_type": "cron", "cron_expression": "0 8 * * *", "target_command": "log",
       "command_payload": {"message": "hi"}}


@pytest.fixture
async def api(tmp_path):
    scheduler = Scheduler(tmp_path / "data")
    scheduler.load()
    await scheduler.start()
    app = create_app(scheduler, TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://daemon") as client:
        client.scheduler = scheduler
        yield client
    await scheduler.stop()


async def _make(api, name: str = "a", **fields) -> dict:
    answer = await api.post("/api/v1/schedules", json={"name": name, **LOG, **fields},
                            headers={**AUTH, "X-Created-By": "alice"})
    assert answer.status_code == 201, answer.text
    return answer.json()


ROUTES = [
    ("POST", "/api/v1/schedules"), ("GET", "/api/v1/schedules"), ("GET", "/api/v1/schedules/{id}"),
    ("PUT", "/api/v1/schedules/{id}"), ("DELETE", "/api/v1/schedules/{id}"),
    ("POST", "/api/v1/schedules/{id}/pause"), ("POST", "/api/v1/schedules/{id}/resume"),
    ("POST", "/api/v1/schedules/{id}/trigger"), ("POST", "/api/v1/schedules/{id}/backfill"),
    ("POST", "/api/v1/schedules/bulk/create"), ("POST", "/api/v1/schedules/bulk/operation"),
    ("GET", "/api/v1/executions"), ("GET", "/api/v1/executions/running"), ("GET", "/api/v1/executions/{id}"),
    ("GET", "/api/v1/schedules/{id}/executions"), ("GET", "/api/v1/executions/stats/{id}"),
    ("GET", "/health/detailed"), ("GET", "/api/v1/status"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_every_route_needs_the_token(api, method: str, path: str) -> None:
    answer = await api.request(method, path.replace("{id}", "x"), json={})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


async def test_probes_and_metrics_answer_without_the_token(api) -> None:
    for path in ("/health", "/ready", "/live", "/metrics"):
        assert (await api.get(path)).status_code == 200, path
    assert "schedules_total" in (await api.get("/metrics")).text


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if "{id}" in r[1]], ids=lambda v: str(v))
async def test_an_unknown_id_is_404(api, method: str, path: str) -> None:
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"} if path.endswith("backfill") else {}
    answer = await api.request(method, path.replace("{id}", "no-such-id"), json=body, headers=AUTH)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] in ("schedule_not_found", "execution_not_found")


async def test_create_answers_201_with_next_run_time_and_refuses_with_422_409_429(api) -> None:
    api.scheduler.schedules.defaults = ScheduleDefaults(max_schedules_per_creator=3)
    made = await _make(api)
    assert made["created_by"] == "alice" and made["status"] == "active"
    assert datetime.fromisoformat(made["next_run_time"]).utcoffset() == timedelta(hours=7)
    refusals = [
        ({"name": "a", **LOG}, 409, "conflict"),
        ({"name": "b", **LOG, "target_command": "shell"}, 422, "target_command"),
        ({"name": "b", **LOG, "command_payload": {"message": 3}}, 422, "command_payload.message"),
        ({"name": "b", **LOG, "cron_expression": "61 * * * *"}, 422, "cron_expression"),
        ({"name": "b", **LOG, "interval_seconds": 60}, 422, "interval_seconds"),
        ({"name": "b", **LOG, "surprise": 1}, 422, "surprise"),
        ({"name": "b", "schedule_type": "one_time", "run_at": "2020-01-01T00:00:00Z", "target_command": "log",
          "command_payload": {"message": "x"}}, 422, "run_at"),
    ]
    for body, status, what in refusals:
        answer = await api.post("/api/v1/schedules", json=body, headers=AUTH)
        assert answer.status_code == status, (body, answer.text)
        assert what in json.dumps(answer.json()), answer.text
    for name in ("c", "d"):
        await _make(api, name)
    over = await api.post("/api/v1/schedules", json={"name": "e", **LOG}, headers={**AUTH, "X-Created-By": "alice"})
    assert over.status_code == 429 and over.json()["error"] == "too_many_schedules"
    stored = json.loads((api.scheduler.data_dir / "schedules.json").read_text(encoding="utf-8"))
    assert len(stored["schedules"]) == 3  # no refusal wrote anything


async def test_list_filters_and_pages(api) -> None:
    for index in range(5):
        await _make(api, f"s{index}", tags=["even" if index % 2 == 0 else "odd"])
    page = (await api.get("/api/v1/schedules", params={"tag": "even", "limit": 2}, headers=AUTH)).json()
    assert (page["count"], page["total"], [s["name"] for s in page["schedules"]]) == (2, 3, ["s0", "s2"])
    rest = (await api.get("/api/v1/schedules", params={"tag": "even", "offset": 2}, headers=AUTH)).json()
    assert [s["name"] for s in rest["schedules"]] == ["s4"]
    assert (await api.get("/api/v1/schedules", params={"status": "paused"}, headers=AUTH)).json()["total"] == 0
    assert (await api.get("/api/v1/schedules", params={"status": ""}, headers=AUTH)).status_code == 422
    assert (await api.get("/api/v1/schedules", params={"limit": 0}, headers=AUTH)).status_code == 422


async def test_update_pause_resume_trigger_delete_and_the_audit_lines(api) -> None:
    made = await _make(api)
    sid = made["schedule_id"]
    performer = {**AUTH, "X-Performed-By": "bob"}
    updated = (await api.put(f"/api/v1/schedules/{sid}", json={"cron_expression": "30 9 * * *"}, headers=performer)).json()
    assert updated["cron_expression"] == "30 9 * * *" and "T09:30:00" in updated["next_run_time"]
    assert (await api.put(f"/api/v1/schedules/{sid}", json={"priority": 11}, headers=AUTH)).status_code == 422
    paused = (await api.post(f"/api/v1/schedules/{sid}/pause", json={"reason": "vacation"}, headers=performer)).json()
    assert (paused["status"], paused["next_run_time"], paused["paused_reason"]) == ("paused", None, "vacation")
    triggered = await api.post(f"/api/v1/schedules/{sid}/trigger", headers={**AUTH, "X-Triggered-By": "carol"})
    assert triggered.status_code == 202
    assert triggered.json()["job"]["triggered_by"] == "trigger:carol"
    resumed = (await api.post(f"/api/v1/schedules/{sid}/resume", headers=performer)).json()
    assert resumed["status"] == "active" and resumed["next_run_time"] is not None
    deleted = await api.delete(f"/api/v1/schedules/{sid}", headers=performer)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == sid
    assert (await api.get(f"/api/v1/schedules/{sid}", headers=AUTH)).status_code == 404
    lines = read_audit(api.scheduler.data_dir, target_id=sid, limit=20)
    seen = {(line["action"], line["actor"]) for line in lines}
    assert {("schedule.create", "alice"), ("schedule.update", "bob"), ("schedule.pause", "bob"),
            ("schedule.trigger", "carol"), ("schedule.resume", "bob"), ("schedule.delete", "bob")} <= seen


async def test_bulk_create_and_operation_answer_per_item(api) -> None:
    answer = await api.post("/api/v1/schedules/bulk/create", headers=AUTH, json={"schedules": [
        {"name": "x", **LOG}, {"name": "y", **LOG, "target_command": "shell"}]})
    body = answer.json()
    assert answer.status_code == 200 and (body["created"], body["failed"]) == (1, 1)
    assert body["results"][1]["status"] == 422
    sid = body["results"][0]["schedule"]["schedule_id"]
    operation = await api.post("/api/v1/schedules/bulk/operation", headers=AUTH, json={
        "schedule_ids": [sid, "missing"], "operation": "pause", "reason": "maintenance"})
    result = operation.json()
    assert (result["succeeded"], result["failed"]) == (1, 1)
    assert result["results"][1]["error"]["error"] == "schedule_not_found"
    bad = await api.post("/api/v1/schedules/bulk/operation", headers=AUTH,
                         json={"schedule_ids": [sid], "operation": "explode"})
    assert bad.status_code == 422
    assert (await api.post("/api/v1/schedules/bulk/create", headers=AUTH, json={"schedules": []})).status_code == 422


async def test_executions_history_running_stats_and_backfill(api) -> None:
    made = await _make(api, cron_expression="0 * * * *")  # hourly
    sid = made["schedule_id"]
    job = (await api.post(f"/api/v1/schedules/{sid}/trigger", headers=AUTH)).json()
    for _ in range(200):  # the loop runs the triggered job
        record = (await api.get(f"/api/v1/executions/{job['execution_id']}", headers=AUTH)).json()
        if record.get("status") == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert record["status"] == "succeeded" and record["triggered_by"] == "trigger:api"
    listed = (await api.get("/api/v1/executions", params={"schedule_id": sid}, headers=AUTH)).json()
    assert [e["execution_id"] for e in listed["executions"]] == [job["execution_id"]]
    mine = (await api.get(f"/api/v1/schedules/{sid}/executions", params={"status": "succeeded"}, headers=AUTH)).json()
    assert mine["count"] == 1
    assert (await api.get("/api/v1/executions", params={"status": "nope"}, headers=AUTH)).status_code == 422
    assert (await api.get("/api/v1/executions/running", headers=AUTH)).json()["count"] == 0
    stats = (await api.get(f"/api/v1/executions/stats/{sid}", headers=AUTH)).json()
    assert (stats["succeeded"], stats["success_rate"]) == (1, 1.0)
    now = datetime.now(timezone.utc)
    backfill = await api.post(f"/api/v1/schedules/{sid}/backfill", headers=AUTH, json={
        "start": (now - timedelta(hours=3)).isoformat(), "end": now.isoformat()})
    assert backfill.status_code == 200 and len(backfill.json()["added"]) >= 1
    future = await api.post(f"/api/v1/schedules/{sid}/backfill", headers=AUTH, json={
        "start": now.isoformat(), "end": (now + timedelta(hours=3)).isoformat()})
    assert future.status_code == 422


async def test_health_detailed_names_each_part(api) -> None:
    body = (await api.get("/health/detailed", headers=AUTH)).json()
    assert set(body["parts"]) >= {"storage", "lock", "dispatch_loop", "schedule_loop", "next_fire", "disk"}
    assert body["parts"]["dispatch_loop"]["ok"] and body["parts"]["schedule_loop"]["ok"]
