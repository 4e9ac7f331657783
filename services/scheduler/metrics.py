"""Prometheus metrics of one Scheduler, served as ``GET /metrics``.

Each Scheduler has a registry of its own (``metrics_for``), never the process's default
one: two schedulers in one process (the tests, a demo beside the daemon) keep apart.

| name | type | labels | source |
| --- | --- | --- | --- |
| ``schedules_total`` | gauge | ``type``, ``status`` | the schedules, by schedule_type and active/paused/completed |
| ``schedule_executions_total`` | counter | ``schedule_type``, ``status`` | runs ended since start |
| ``schedule_execution_duration_seconds`` | histogram | ``status`` | how long each ended run ran |
| ``schedule_misfires_total`` | counter | | fires found later than their grace since start |
| ``jobs`` | gauge | ``status`` | the job table, by status |
| ``service_info`` | info | ``name``, ``version`` | ``Settings.service_name`` / ``service_version`` |

The gauges and the two counters are read at scrape time from the live objects (the
schedule service keeps the counts as plain ints, so the metric cannot drift from them);
the histogram is fed as each run ends (``ScheduleService.duration_listeners``). An
extension adds its own metrics with ``register_collector`` or ``SchedulerMetrics.histogram``
(the pipeline's quota gauges and state durations). Labels are bounded enums only (status,
type, state): never an id, a name or a token.

``metrics_router`` is the route; it has no auth dependency (probes and scrapers on
loopback) and answers on the loop thread, so the scrape sees the tables between changes.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .models import JobStatus
from .schedule_model import ScheduleStatus, ScheduleType
from .settings import Settings

if TYPE_CHECKING:
    from fastapi import APIRouter

    from .scheduler import Scheduler

__all__ = ["DURATION_BUCKETS", "SchedulerMetrics", "metrics_for", "metrics_router", "register_collector"]

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
                    28800.0, 86400.0, math.inf)
"""Seconds, from a log line's run to a day-long render (a run may last 24 h)."""

_ENDED = ("succeeded", "failed", "cancelled", "expired")
"""The statuses of an ended run as the schedule service counts them (its names of the
finished job statuses); shown at 0 before the first, so a rate starts from a known zero."""
_TIMED = ("succeeded", "failed")
"""The statuses whose runs have a duration (they started and ended)."""


class _SchedulerCollector(Collector):
    """The values read at scrape time: schedules, ended runs, misfires, jobs, service info."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._fallback: Settings | None = None

    def describe(self) -> Iterator[Metric]:
        """The families with no samples: the registry checks names against them once."""
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily,
                                 GaugeMetricFamily, InfoMetricFamily]:
        return (
            GaugeMetricFamily("schedules_total", "Schedules by schedule type and status.",
                              labels=["type", "status"]),
            CounterMetricFamily("schedule_executions", "Schedule runs ended since start, by type and status.",
                                labels=["schedule_type", "status"]),
            CounterMetricFamily("schedule_misfires", "Fires found later than their misfire grace since start."),
            GaugeMetricFamily("jobs", "Jobs in the table by status.", labels=["status"]),
            InfoMetricFamily("service", "The service's name and version."),
        )

    def collect(self) -> Iterator[Metric]:
        schedules_total, executions, misfires, jobs, info = self._families()
        service = self._scheduler.schedules
        status_of = service.status_of  # counted by the enums: reading .value 10,000 times costs
        counts = Counter((s.schedule_type, status_of(s)) for s in list(service.store.schedules.values()))
        for kind in ScheduleType:
            for status in ScheduleStatus:
                schedules_total.add_metric([kind.value, status.value], counts[(kind, status)])
        yield schedules_total

        ended = {(kind.value, status): 0 for kind in ScheduleType for status in _ENDED}
        ended.update(service.executions_ended)
        for (kind, status), count in ended.items():
            executions.add_metric([kind, status], count)
        yield executions

        misfires.add_metric([], service.misfires_total)
        yield misfires

        # Scheduler.counts_by_status, counted by the enum: reading .value 100,000 times costs
        by_status = Counter(job.status for job in list(self._scheduler.manager.jobs.values()))
        for status in JobStatus:
            jobs.add_metric([status.value], by_status[status])
        yield jobs

        settings = self._scheduler.settings or self._default_settings()
        info.add_metric([], {"name": settings.service_name, "version": settings.service_version})
        yield info

    def _default_settings(self) -> Settings:
        if self._fallback is None:  # a scheduler built without settings (tests): the defaults
            self._fallback = Settings()
        return self._fallback


class SchedulerMetrics:
    """The metrics of one Scheduler, in a registry of their own (use ``metrics_for``).

    :param scheduler: whose schedules, jobs and settings the scrape reads; its schedule
        service's run durations feed ``schedule_execution_duration_seconds`` from now on.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_SchedulerCollector(scheduler))
        self.execution_duration = Histogram(
            "schedule_execution_duration_seconds", "How long schedule runs ran, by how they ended.",
            ["status"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        for status in _TIMED:
            self.execution_duration.labels(status=status)
        self._histograms: dict[str, Histogram] = {}
        scheduler.schedules.duration_listeners.append(self._run_ended)

    def _run_ended(self, status: str, seconds: float) -> None:
        if status not in _TIMED:  # a bounded label: nothing else can become one
            logger.warning("run duration with an unknown status", extra={"status": status})
            return
        self.execution_duration.labels(status=status).observe(max(seconds, 0.0))

    def register(self, collector: Collector) -> None:
        """Add an extension's collector (a name already taken raises ValueError)."""
        self.registry.register(collector)

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> Histogram:
        """The histogram ``name`` in this registry, made on the first call (later calls get it).

        For an extension whose events happen where it cannot hold the object (the
        pipeline's state durations, told by the run's context). Label only by bounded enums.
        """
        held = self._histograms.get(name)
        if held is None:
            held = Histogram(name, documentation, list(labelnames), buckets=list(buckets), registry=self.registry)
            self._histograms[name] = held
        return held

    def render(self) -> bytes:
        """The text exposition of every metric, computed now."""
        return generate_latest(self.registry)


def metrics_for(scheduler: Scheduler) -> SchedulerMetrics:
    """The scheduler's metrics (``scheduler.metrics``), made on the first call."""
    held: Any = getattr(scheduler, "metrics", None)
    if held is None:
        held = SchedulerMetrics(scheduler)
        scheduler.metrics = held  # type: ignore[attr-defined]
    return held


def register_collector(scheduler: Scheduler, collector: Collector) -> None:
    """Add an extension's collector to the scheduler's registry (see ``SchedulerMetrics.register``)."""
    metrics_for(scheduler).register(collector)


def metrics_router(scheduler: Scheduler) -> APIRouter:
    """``GET /metrics``: the Prometheus text of ``scheduler``'s metrics (no token needed)."""
    # imported here: an extension installing its metrics (every CLI command) needs no web stack
    from fastapi import APIRouter
    from fastapi.responses import Response

    metrics = metrics_for(scheduler)
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:  # async: read on the loop thread
        return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
