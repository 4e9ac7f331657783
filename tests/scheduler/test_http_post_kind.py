"""The http.post kind: a schedule POSTs to an allow-listed target, never to a URL it names."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.scheduler import JobStatus, Scheduler
from services.scheduler.errors import JobValidationError
from services.scheduler.handlers import default_registry
from services.scheduler.http_post_kind import HttpPostKind
from services.scheduler.scheduler_config import TargetConfig


class _Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[_Receiver] = []

    def make(statuses: list[int] | None = None) -> _Receiver:
        made.append(_Receiver(list(statuses or [])))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _scheduler(tmp_path, url: str) -> Scheduler:
    registry = default_registry()
    target = TargetConfig(url=url, headers={"X-Source": "scheduler"}, headers_env={"Authorization": "HOOK_AUTH"})
    HttpPostKind({"analytics": target}, environ={"HOOK_AUTH": "Bearer s3cret"}).register(registry)
    scheduler = Scheduler(tmp_path, registry=registry, max_concurrent_jobs=2)
    scheduler.load()
    return scheduler


async def _until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_triggered_schedule_posts_its_body_to_the_target(tmp_path, receiver) -> None:
    server = receiver()
    scheduler = _scheduler(tmp_path, server.url)
    await scheduler.start()
    try:
        schedule = await scheduler.schedules.create({
            "name": "collect", "schedule_type": "cron", "cron_expression": "0 3 * * *",
            "target_command": "http.post", "command_payload": {"target": "analytics", "body": {"metrics": ["sales"]}},
        })
        job = await scheduler.schedules.trigger(schedule.schedule_id, triggered_by="alice")
        await _until(lambda: scheduler.get_job(job.job_id).status is JobStatus.COMPLETED)
    finally:
        await scheduler.stop()
    assert server.bodies == [{
        "schedule_id": schedule.schedule_id, "execution_id": job.job_id,
        "fire_time": scheduler.get_job(job.job_id).fire_time, "payload": {"metrics": ["sales"]},
    }]
    assert server.headers[0]["X-Source"] == "scheduler"
    assert server.headers[0]["Authorization"] == "Bearer s3cret"
    assert scheduler.get_job(job.job_id).result["status"] == 200


async def test_a_server_error_is_retried_and_a_client_error_is_not(tmp_path, receiver) -> None:
    server = receiver([500, 400])
    scheduler = _scheduler(tmp_path, server.url)
    await scheduler.start()
    try:
        schedule = await scheduler.schedules.create({
            "name": "collect", "schedule_type": "interval", "interval_seconds": 3600, "max_retries": 2,
            "retry_delay_seconds": 0, "target_command": "http.post", "command_payload": {"target": "analytics"},
        })
        job = await scheduler.schedules.trigger(schedule.schedule_id)
        await _until(lambda: scheduler.get_job(job.job_id).status is JobStatus.FAILED)
    finally:
        await scheduler.stop()
    failed = scheduler.get_job(job.job_id)
    assert len(server.bodies) == 2  # the 500 was tried again; the 400 was not
    assert failed.retry_count == 1
    assert "HTTP 400" in failed.error and "same answer" in failed.error


def test_a_target_outside_the_allow_list_is_refused_at_creation(tmp_path) -> None:
    scheduler = _scheduler(tmp_path, "http://127.0.0.1:9/unused")

    async def create(payload: dict) -> None:
        await scheduler.schedules.create({
            "name": "x", "schedule_type": "cron", "cron_expression": "0 3 * * *",
            "target_command": "http.post", "command_payload": payload,
        })

    with pytest.raises(JobValidationError, match=r"command_payload.target: .*analytics.*'elsewhere'"):
        asyncio.run(create({"target": "elsewhere"}))
    with pytest.raises(JobValidationError, match="command_payload.url: unknown key"):
        asyncio.run(create({"target": "analytics", "url": "http://evil.example/"}))
    assert not (tmp_path / "schedules.json").exists()
