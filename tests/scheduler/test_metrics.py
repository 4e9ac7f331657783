"""``GET /metrics``: every metric with its type and labels, values that follow the state,
no id as a label, and one registry per scheduler."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from services.scheduler import schedules
from services.scheduler.handlers import HandlerRegistry, PermanentFailure, default_registry
from services.scheduler.metrics import metrics_for, metrics_router, register_collector
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.schedules import _JOB_STATES
from services.scheduler.settings import Settings

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
LABEL_NAMES = {"type", "status", "schedule_type", "le", "name", "version"}
LOG = {"target_command": "log", "command_payload": {"message": "x"}}


@pytest.fixture
def registry(clock) -> HandlerRegistry:
    """``log``, and ``slow`` (90 s by the fake clock) and ``broken`` (fails for good)."""

    async def slow(job: ScheduledJob) -> None:
        clock.advance(seconds=90)

    async def broken(job: ScheduledJob) -> None:
        clock.advance(seconds=3)
        raise PermanentFailure("broken on purpose")

    made = default_registry()
    made.register("slow", slow)
    made.register("broken", broken)
    return made


def scraper(scheduler: Scheduler) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``GET /metrics`` through a FastAPI app including the router, built now as the daemon
    builds it at start (before any run: the histograms see every run from then on).

    The scrape returns the families by name.
    """
    app = FastAPI()
    app.include_router(metrics_router(scheduler))

    async def scrape() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get("/metrics")  # no token, no redirect
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
        return {family.name: family for family in text_string_to_metric_families(answer.text)}

    return scrape


def value(families: dict[str, Any], family: str, sample: str | None = None, **labels: str) -> float:
    """The one sample of ``family`` named ``sample`` (default the family's) with ``labels``."""
    found = [s.value for s in families[family].samples
             if s.name == (sample or family) and s.labels == labels]
    assert len(found) == 1, (family, sample, labels, families[family].samples)
    return found[0]


def labels_of(families: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, text) for family in families.values() for s in family.samples for name, text in s.labels.items()]


async def until(done: Callable[[], bool]) -> None:
    """Let the schedule loop and the writer thread work until ``done`` (at most 5 s)."""
    async with asyncio.timeout(5):
        while not done():
            await asyncio.sleep(0.01)


async def test_every_metric_has_its_type_and_labels(make_scheduler) -> None:
    scheduler = make_scheduler()
    scrape = scraper(scheduler)
    families = await scrape()

    expected = {  # family name as the parser gives it (a counter's without _total): type, labels
        "schedules_total": ("gauge", {"type", "status"}),
        "schedule_executions": ("counter", {"schedule_type", "status"}),
        "schedule_execution_duration_seconds": ("histogram", {"status", "le"}),
        "schedule_misfires": ("counter", set()),
        "jobs": ("gauge", {"status"}),
        "service_info": ("gauge", {"name", "version"}),
    }
    for name, (kind, labels) in expected.items():
        assert families[name].type == kind, name
        assert families[name].samples, name
        for sample in families[name].samples:
            wanted = labels - {"le"} if not sample.name.endswith("_bucket") else labels
            assert set(sample.labels) == wanted, (name, sample)
    assert {s.name for s in families["schedule_executions"].samples} == {"schedule_executions_total"}
    assert {s.name for s in families["schedule_misfires"].samples} == {"schedule_misfires_total"}
    # every combination is there from the start, at 0
    assert value(families, "schedules_total", type="one_time", status="completed") == 0
    assert value(families, "schedule_executions", "schedule_executions_total",
                 schedule_type="cron", status="expired") == 0
    assert value(families, "schedule_misfires", "schedule_misfires_total") == 0
    assert value(families, "schedule_execution_duration_seconds", "schedule_execution_duration_seconds_count",
                 status="failed") == 0
    assert {s.labels["status"] for s in families["jobs"].samples} == {status.value for status in JobStatus}
    assert value(families, "service_info", name="video-scheduler", version=Settings().service_version) == 1


def test_the_ended_statuses_are_the_schedule_services_names() -> None:
    from services.scheduler import metrics
    from services.scheduler.models import FINISHED_STATUSES

    assert set(metrics._ENDED) == {_JOB_STATES[status] for status in FINISHED_STATUSES}


@pytest.fixture
def short_schedule_sleeps(monkeypatch) -> None:
    """The schedule loop sleeps at most 50 ms: its ``stop`` may otherwise wait out a whole
    60 s sleep (a wake that comes while the loop flushes is cleared by its next sleep)."""
    monkeypatch.setattr(schedules, "MAX_SLEEP_SECONDS", 0.05)


@pytest.mark.usefixtures("short_schedule_sleeps")
async def test_schedules_total_follows_create_pause_and_completion(make_scheduler, clock) -> None:
    scheduler = make_scheduler(clock=clock)
    scrape = scraper(scheduler)
    service = scheduler.schedules
    await service.create({"name": "every-hour", "schedule_type": "cron", "cron_expression": "0 * * * *", **LOG})
    paused = await service.create({"name": "interval", "schedule_type": "interval", "interval_seconds": 600, **LOG})
    await service.create({"name": "later", "schedule_type": "interval", "interval_seconds": 600, **LOG})
    await service.pause(paused.schedule_id)
    now = await service.create({"name": "now", "schedule_type": "immediate", **LOG})

    families = await scrape()
    assert value(families, "schedules_total", type="cron", status="active") == 1
    assert value(families, "schedules_total", type="interval", status="active") == 1
    assert value(families, "schedules_total", type="interval", status="paused") == 1
    assert value(families, "schedules_total", type="immediate", status="active") == 1
    assert value(families, "schedules_total", type="immediate", status="completed") == 0

    await service.start()  # the loop fires the immediate schedule once: it is completed
    try:
        await until(lambda: service.status_of(service.get(now.schedule_id)).value == "completed")
    finally:
        await service.stop()
    families = await scrape()
    assert value(families, "schedules_total", type="immediate", status="active") == 0
    assert value(families, "schedules_total", type="immediate", status="completed") == 1
    assert value(families, "jobs", status="scheduled") == 1  # the fire's job
    assert sum(s.value for s in families["schedules_total"].samples) == 4

    await service.delete(paused.schedule_id)
    families = await scrape()
    assert value(families, "schedules_total", type="interval", status="paused") == 0


async def test_executions_and_their_durations_follow_the_runs(make_scheduler, clock) -> None:
    scheduler = make_scheduler(clock=clock)
    scrape = scraper(scheduler)
    service = scheduler.schedules
    slow = await service.create({"name": "slow", "schedule_type": "cron", "cron_expression": "0 3 * * *",
                                 "target_command": "slow"})
    broken = await service.create({"name": "broken", "schedule_type": "interval", "interval_seconds": 3600,
                                   "target_command": "broken"})
    await service.trigger(slow.schedule_id)
    await service.trigger(slow.schedule_id)
    await service.trigger(broken.schedule_id)
    await scheduler.run_once()

    families = await scrape()
    executions = "schedule_executions_total"
    assert value(families, "schedule_executions", executions, schedule_type="cron", status="succeeded") == 2
    assert value(families, "schedule_executions", executions, schedule_type="interval", status="failed") == 1
    assert value(families, "schedule_executions", executions, schedule_type="cron", status="failed") == 0
    histogram = "schedule_execution_duration_seconds"
    assert value(families, histogram, f"{histogram}_count", status="succeeded") == 2
    assert value(families, histogram, f"{histogram}_sum", status="succeeded") == 180
    assert value(families, histogram, f"{histogram}_bucket", status="succeeded", le="60.0") == 0
    assert value(families, histogram, f"{histogram}_bucket", status="succeeded", le="120.0") == 2
    assert value(families, histogram, f"{histogram}_count", status="failed") == 1
    assert value(families, histogram, f"{histogram}_sum", status="failed") == 3
    assert value(families, "jobs", status="completed") == 2
    assert value(families, "jobs", status="failed") == 1


@pytest.mark.usefixtures("short_schedule_sleeps")
async def test_misfires_count_the_fires_found_late(make_scheduler, clock) -> None:
    scheduler = make_scheduler(clock=clock)
    scrape = scraper(scheduler)
    service = scheduler.schedules
    await service.create({"name": "often", "schedule_type": "interval", "interval_seconds": 60,
                          "misfire_grace_time": 30, **LOG})
    clock.advance(minutes=10)  # ten fires due, nine of them more than 30 s ago
    await service.start()
    try:
        await until(lambda: service.misfires_total > 0)
    finally:
        await service.stop()
    assert service.misfires_total == 9
    families = await scrape()
    assert value(families, "schedule_misfires", "schedule_misfires_total") == service.misfires_total


async def test_jobs_by_status_follow_the_table(make_scheduler, clock) -> None:
    scheduler = make_scheduler(clock=clock)
    scrape = scraper(scheduler)
    for i in range(3):
        scheduler.add_job("acct", f"job {i}", kind="log")
    done = scheduler.add_job("acct", "done", kind="log", scheduled_time=clock.now.replace(year=2027))
    scheduler.remove_job(done.job_id)
    families = await scrape()
    assert value(families, "jobs", status="scheduled") == 3
    assert sum(s.value for s in families["jobs"].samples) == 3
    await scheduler.run_once()
    families = await scrape()
    assert value(families, "jobs", status="scheduled") == 0
    assert value(families, "jobs", status="completed") == 3


async def test_service_info_comes_from_the_settings(make_scheduler, tmp_path: Path) -> None:
    scheduler = make_scheduler()
    scrape = scraper(scheduler)
    scheduler.settings = Settings(data_dir=tmp_path, service_name="kenh-truyen", service_version="4.5.6")
    families = await scrape()
    assert [s.labels for s in families["service_info"].samples] == [{"name": "kenh-truyen", "version": "4.5.6"}]


async def test_no_label_value_is_an_id_a_name_or_an_account(make_scheduler, clock) -> None:
    scheduler = make_scheduler(clock=clock)
    scrape = scraper(scheduler)
    service = scheduler.schedules
    made = [await service.create({"name": f"secret-name-{i}", "schedule_type": "cron",
                                  "cron_expression": "0 3 * * *", "account_id": f"acct-{i}", **LOG},
                                 created_by="token-holder")
            for i in range(3)]
    jobs = [await service.trigger(schedule.schedule_id) for schedule in made]
    jobs.append(scheduler.add_job("acct-plain", "plain"))
    await scheduler.run_once()
    families = await scrape()

    private = {s.schedule_id for s in made} | {s.name for s in made} | {j.job_id for j in jobs}
    private |= {"acct-0", "acct-1", "acct-2", "acct-plain", "token-holder"}
    found = labels_of(families)
    assert found
    assert {name for name, _ in found} <= LABEL_NAMES
    for name, text in found:
        assert not UUID.search(text), (name, text)
        assert text not in private and not any(secret in text for secret in private), (name, text)


async def test_two_schedulers_keep_their_metrics_apart(tmp_path: Path, clock, registry) -> None:
    first = Scheduler(tmp_path / "one", clock=clock, registry=registry)
    second = Scheduler(tmp_path / "two", clock=clock, registry=registry)
    first.load(), second.load()
    scrape_first, scrape_second = scraper(first), scraper(second)
    schedule = await first.schedules.create({"name": "slow", "schedule_type": "cron",
                                             "cron_expression": "0 3 * * *", "target_command": "slow"})
    await first.schedules.trigger(schedule.schedule_id)
    first.add_job("a", "x", kind="log")
    await first.run_once()

    one, two = await scrape_first(), await scrape_second()
    assert value(one, "jobs", status="completed") == 2 and value(two, "jobs", status="completed") == 0
    assert value(one, "schedules_total", type="cron", status="active") == 1
    assert value(two, "schedules_total", type="cron", status="active") == 0
    count = "schedule_execution_duration_seconds_count"
    assert value(one, "schedule_execution_duration_seconds", count, status="succeeded") == 1
    assert value(two, "schedule_execution_duration_seconds", count, status="succeeded") == 0
    assert metrics_for(first) is metrics_for(first) and metrics_for(first).registry is not metrics_for(second).registry
    assert REGISTRY.get_sample_value("schedule_misfires_total") is None  # not in the process's registry
    assert REGISTRY.get_sample_value("jobs", {"status": "completed"}) is None


class _Widgets(Collector):
    def __init__(self, name: str = "widgets") -> None:
        self.name = name

    def describe(self):
        return [GaugeMetricFamily(self.name, "Widgets.")]

    def collect(self):
        family = GaugeMetricFamily(self.name, "Widgets.")
        family.add_metric([], 7)
        yield family


async def test_an_extension_adds_a_collector_and_cannot_take_a_name(make_scheduler) -> None:
    scheduler = make_scheduler()
    scrape = scraper(scheduler)
    register_collector(scheduler, _Widgets())
    families = await scrape()
    assert value(families, "widgets") == 7
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register_collector(scheduler, _Widgets("jobs"))
    other = metrics_for(scheduler).histogram("extension_seconds", "An extension's durations.", ["state"])
    assert metrics_for(scheduler).histogram("extension_seconds", "again") is other
    other.labels(state="Render").observe(2.0)
    families = await scrape()
    assert value(families, "extension_seconds", "extension_seconds_count", state="Render") == 1


async def test_a_router_built_twice_shares_the_registry(make_scheduler) -> None:
    scheduler = make_scheduler()
    scraper(scheduler)
    families = await scraper(scheduler)()  # a second router: no duplicate registration
    assert "jobs" in families
