"""The local HTTP API, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.scheduler.api import create_app
from services.scheduler.api_token import ensure_token, read_token
from services.scheduler.clock import utc_now
from services.scheduler.daemon_client import DaemonClient
from services.scheduler.errors import JobNotFoundError, JobValidationError
from services.scheduler.scheduler import Scheduler

TOKEN = "test-token"


@pytest.fixture
async def api(data_dir: Path):
    scheduler = Scheduler(data_dir)
    scheduler.load()
    transport = httpx.ASGITransport(app=create_app(scheduler, TOKEN))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        client.scheduler = scheduler
        yield client


async def test_add_list_get_delete(api: httpx.AsyncClient) -> None:
    when = (utc_now() + timedelta(hours=1)).isoformat()
    created = await api.post("/api/v1/jobs", json={
        "account_id": "acc", "content": "Chương 5", "scheduled_time": when, "priority": "high",
    })
    assert created.status_code == 201
    job = created.json()
    assert job["priority"] == 3 and job["status"] == "scheduled" and job["content"] == "Chương 5"
    listed = (await api.get("/api/v1/jobs", params={"account_id": "acc"})).json()
    assert listed["count"] == 1 and listed["jobs"][0]["job_id"] == job["job_id"]
    assert (await api.get(f"/api/v1/jobs/{job['job_id']}")).json() == job
    deleted = await api.delete(f"/api/v1/jobs/{job['job_id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == job["job_id"]
    assert (await api.get("/api/v1/jobs")).json() == {"jobs": [], "count": 0}


async def test_naive_scheduled_time_is_scheduler_zone_time(api: httpx.AsyncClient) -> None:
    tomorrow = (utc_now() + timedelta(days=1)).strftime("%Y-%m-%d")
    job = (await api.post("/api/v1/jobs", json={
        "account_id": "a", "content": "x", "scheduled_time": f"{tomorrow}T08:00"})).json()
    assert job["scheduled_time"] == f"{tomorrow}T01:00:00Z"  # 08:00 in Vietnam


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_id": "a", "content": "x" * 501}, "content"),
        ({"account_id": "", "content": "x"}, "account_id"),
        ({"account_id": "a", "content": "x", "priority": 7}, "priority"),
        ({"account_id": "a", "content": "x", "max_retries": -2}, "max_retries"),
        ({"account_id": "a", "content": "x", "scheduled_time": "tomorrow"}, "scheduled_time"),
        ({"account_id": "a", "content": "x", "scheduled_time": "2099-01-01T00:00:00Z"}, "scheduled_time"),
        ({"account_id": "a", "content": "x", "kind": "shell"}, "kind"),
        ({"account_id": "a", "content": "x", "command": "rm"}, "command"),
        ({"content": "x"}, "account_id"),
    ],
)
async def test_invalid_job_is_422_with_field_and_changes_nothing(api, body, field) -> None:
    answer = await api.post("/api/v1/jobs", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_job" and answer.json()["field"] == field
    assert api.scheduler.manager.jobs == {}


async def test_body_that_is_not_an_object_is_422(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/jobs", content=b"[1]", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"


async def test_unknown_job_is_404_json(api: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        answer = await api.request(method, "/api/v1/jobs/nope")
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "message": "job not found: nope"}


async def test_bad_status_filter_is_422(api: httpx.AsyncClient) -> None:
    answer = await api.get("/api/v1/jobs", params={"status": "done"})
    assert answer.status_code == 422 and answer.json()["field"] == "status"


async def test_token_is_required_except_on_probes(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        answer = await api.get("/api/v1/jobs", headers=headers)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    bare = httpx.AsyncClient(transport=api._transport, base_url="http://test")
    assert (await bare.get("/live")).json() == {"status": "alive"}
    ready = await bare.get("/ready")
    assert ready.status_code == 503  # loaded but the loop is not started
    health = (await bare.get("/health")).json()
    assert health["state"] == "loaded" and health["jobs"] == 0
    await bare.aclose()


async def test_ready_once_the_loop_runs(api: httpx.AsyncClient) -> None:
    await api.scheduler.start()
    assert (await api.get("/ready")).status_code == 200
    assert (await api.get("/health")).json()["status"] == "ok"
    await api.scheduler.stop()


def test_token_file_is_0600_and_stable(data_dir: Path) -> None:
    data_dir.mkdir()
    token = ensure_token(data_dir)
    assert (data_dir / "api_token").stat().st_mode & 0o777 == 0o600
    assert ensure_token(data_dir) == token == read_token(data_dir)
    (data_dir / "api_token").chmod(0o644)
    assert read_token(data_dir) == token
    assert (data_dir / "api_token").stat().st_mode & 0o777 == 0o600


def test_client_maps_error_bodies_to_typed_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(422, json={"error": "invalid_job", "field": "content", "message": "content: too long"})
        return httpx.Response(404, json={"error": "not_found", "message": "job not found: x"})

    client = DaemonClient(1, "t", transport=httpx.MockTransport(answer))
    with pytest.raises(JobValidationError) as caught:
        client.add_job("a", "b")
    assert (caught.value.field, caught.value.rule) == ("content", "too long")
    with pytest.raises(JobNotFoundError, match="^job not found: x$"):
        client.get_job("x")
