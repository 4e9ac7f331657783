"""The pipeline's metrics in its scheduler's ``/metrics``: today's quota, as check-quota
counts it, and how long each Task state ran (told by the machine to the run's context)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.pipeline.engine.context import RunContext
from services.pipeline.engine.definition import Definition
from services.pipeline.engine.machine import Checkpoint, Machine, PipelineFailed
from services.pipeline.extension import PipelineExtension
from services.pipeline.settings import EMBEDDED_VALUES, PipelineSettings
from services.pipeline.stages import quota
from services.scheduler.metrics import metrics_router
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import SettingsError
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # 19:00 in Vietnam, 23 November
DEFINITION = Definition.model_validate({
    "StartAt": "Quick",
    "States": {
        "Quick": {"Type": "Task", "Next": "Slow"},
        "Slow": {"Type": "Task", "Next": "Broken"},
        "Broken": {"Type": "Task", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
})


class Settable:
    """The pipeline settings as a test sets them (``broken``: a SettingsError)."""

    def __init__(self, daily_quota: int) -> None:
        self.values = PipelineSettings.from_values({**EMBEDDED_VALUES, "daily_quota": daily_quota})
        self.broken = False

    def __call__(self) -> PipelineSettings:
        if self.broken:
            raise SettingsError("DAILY_QUOTA: must be an integer, got 'ten'")
        return self.values


def pipeline_scheduler(data_dir: Path, clock: FakeClock, settings: Settable) -> Scheduler:
    scheduler = Scheduler(data_dir, clock=clock, extensions=[PipelineExtension(settings=settings)])
    scheduler.load()
    return scheduler


async def scrape(scheduler: Scheduler) -> dict[str, Any]:
    app = FastAPI()
    app.include_router(metrics_router(scheduler))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def samples(families: dict[str, Any], name: str) -> dict[tuple[str, tuple], float]:
    family = families.get(name)
    return {} if family is None else {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def gauge(families: dict[str, Any], name: str) -> float | None:
    found = samples(families, name)
    return None if not found else found[(name, ())]


def video(scheduler: Scheduler, when: datetime, status: JobStatus = JobStatus.SCHEDULED) -> ScheduledJob:
    job = ScheduledJob(account_id="kenh", content="next", kind=quota.VIDEO_KIND, scheduled_time=when,
                       status=status, created_at=NOW, updated_at=NOW)
    return scheduler.manager.save(job)


async def test_the_quota_gauges_are_check_quotas_count_of_today(tmp_path: Path) -> None:
    clock, settings = FakeClock(NOW), Settable(daily_quota=3)
    scheduler = pipeline_scheduler(tmp_path / "data", clock, settings)
    video(scheduler, NOW)
    video(scheduler, datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc))  # 23:30 in Vietnam: today
    video(scheduler, datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc))  # 00:30 tomorrow in Vietnam
    video(scheduler, datetime(2026, 11, 22, 16, 30, tzinfo=timezone.utc))  # 23:30 yesterday in Vietnam
    video(scheduler, NOW, JobStatus.FAILED)  # a failed video frees its slot
    scheduler.add_job("kenh", "a log line", kind="log")  # not a video

    families = await scrape(scheduler)
    checked = quota.handler({}, quota.JobsView(scheduler.jobs_snapshot(), clock, settings()))
    assert (checked["used"], checked["remaining"], checked["quota"]) == (2, 1, 3)
    assert gauge(families, "video_quota_used") == 2
    assert gauge(families, "video_quota_remaining") == 1
    assert gauge(families, "video_quota_limit") == 3
    for family in ("video_quota_used", "video_quota_remaining", "video_quota_limit"):
        assert families[family].type == "gauge"

    video(scheduler, NOW), video(scheduler, NOW)
    families = await scrape(scheduler)
    assert (gauge(families, "video_quota_used"), gauge(families, "video_quota_remaining")) == (4, 0)

    clock.advance(hours=6)  # 01:00 the next Vietnam day: yesterday's count is not today's
    families = await scrape(scheduler)
    assert (gauge(families, "video_quota_used"), gauge(families, "video_quota_remaining")) == (1, 2)


async def test_broken_settings_leave_out_the_limit_not_the_count(tmp_path: Path, caplog) -> None:
    clock, settings = FakeClock(NOW), Settable(daily_quota=5)
    scheduler = pipeline_scheduler(tmp_path / "data", clock, settings)
    video(scheduler, NOW)
    settings.broken = True
    families = await scrape(scheduler)
    await scrape(scheduler)
    assert gauge(families, "video_quota_used") == 1
    assert gauge(families, "video_quota_limit") is None and gauge(families, "video_quota_remaining") is None
    assert [r.getMessage() for r in caplog.records if "quota metrics" in r.getMessage()] == [
        "quota metrics without a limit: the settings are broken: DAILY_QUOTA: must be an integer, got 'ten'"
    ]  # once, not at every scrape
    settings.broken = False
    families = await scrape(scheduler)
    assert (gauge(families, "video_quota_limit"), gauge(families, "video_quota_remaining")) == (5, 4)


async def test_each_task_state_that_returns_is_timed_by_the_run_clock(tmp_path: Path) -> None:
    clock, settings = FakeClock(NOW), Settable(daily_quota=3)
    scheduler = pipeline_scheduler(tmp_path / "data", clock, settings)
    other = pipeline_scheduler(tmp_path / "other", clock, settings)

    def quick(event: dict[str, Any], context: Any) -> dict[str, Any]:
        clock.advance(seconds=2)
        return {}

    async def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        clock.advance(seconds=4000)
        return {}

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        clock.advance(seconds=7)
        raise OSError("disk full")

    async def save(cp: Checkpoint) -> None:
        return None

    context = RunContext(scheduler, settings, asyncio.get_running_loop())
    machine = Machine(DEFINITION, {"Quick": quick, "Slow": slow, "Broken": broken},
                      save=save, clock=clock, context=context)
    with pytest.raises(PipelineFailed):
        await machine.run(Checkpoint())

    found = samples(await scrape(scheduler), "pipeline_state_duration_seconds")
    name = "pipeline_state_duration_seconds"
    assert found[(f"{name}_count", (("state", "Quick"),))] == 1
    assert found[(f"{name}_sum", (("state", "Quick"),))] == 2
    assert found[(f"{name}_count", (("state", "Slow"),))] == 1
    assert found[(f"{name}_sum", (("state", "Slow"),))] == 4000
    assert found[(f"{name}_bucket", (("le", "3600.0"), ("state", "Slow")))] == 0
    assert found[(f"{name}_bucket", (("le", "7200.0"), ("state", "Slow")))] == 1
    assert {dict(labels)["state"] for _, labels in found} == {"Quick", "Slow"}  # Broken never returned
    assert samples(await scrape(other), name) == {}  # the other scheduler ran nothing


async def test_a_failing_report_does_not_fail_the_run() -> None:
    clock = FakeClock(NOW)

    class Context:
        def state_finished(self, state: str, seconds: float) -> None:
            raise RuntimeError("metrics are down")

    async def save(cp: Checkpoint) -> None:
        return None

    def fine(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {}

    machine = Machine(DEFINITION, {"Quick": fine, "Slow": fine, "Broken": fine},
                      save=save, clock=clock, context=Context())
    done = await machine.run(Checkpoint())
    assert done.state == "Done"


async def test_the_pipelines_labels_are_state_names_only(tmp_path: Path) -> None:
    clock, settings = FakeClock(NOW), Settable(daily_quota=3)
    scheduler = pipeline_scheduler(tmp_path / "data", clock, settings)
    job = video(scheduler, NOW)
    RunContext(scheduler, settings).state_finished("FetchManga", 12.5)
    families = await scrape(scheduler)
    found = [(name, text) for family in families.values() for s in family.samples for name, text in s.labels.items()]
    assert {text for name, text in found if name == "state"} == {"FetchManga"}
    assert not any(job.job_id in text or "kenh" in text for _, text in found)


async def test_the_extension_installs_the_metrics_before_any_run(tmp_path: Path) -> None:
    scheduler = pipeline_scheduler(tmp_path / "data", FakeClock(NOW), Settable(daily_quota=3))
    families = await scrape(scheduler)
    assert families["pipeline_state_duration_seconds"].type == "histogram"
    assert (gauge(families, "video_quota_used"), gauge(families, "video_quota_limit")) == (0, 3)
    assert "schedules_total" in families  # the scheduler's own, in the same registry
