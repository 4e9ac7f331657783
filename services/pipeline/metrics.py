"""The pipeline's metrics, in its scheduler's registry (``services.scheduler.metrics``).

| name | type | labels | source |
| --- | --- | --- | --- |
| ``video_quota_limit`` | gauge | | DAILY_QUOTA, as the settings say at scrape time |
| ``video_quota_used`` | gauge | | videos using a slot of today's (Vietnam day's) quota |
| ``video_quota_remaining`` | gauge | | ``limit - used``, never below 0 |
| ``pipeline_state_duration_seconds`` | histogram | ``state`` | how long each Task state's stage ran, when it returned |

The quota is check-quota's own arithmetic (``stages/quota.py``) over the scheduler's job
table, computed at scrape time, so the gauges and the CheckQuota stage cannot disagree.
The state durations come from the machine: it tells its context each Task state that
finished (``RunContext.state_finished``), which calls ``record_state_duration``. A state
label is a state name of the definition (``config/pipeline.json``): a bounded set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta, timezone

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.pipeline.settings import PipelineSettings
from services.pipeline.stages.quota import VIDEO_KIND, VIETNAM_TZ, count_for_day, quota_result, vietnam_today
from services.scheduler.metrics import metrics_for, register_collector
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import SettingsError

__all__ = ["STATE_DURATION", "QuotaCollector", "install_metrics", "record_state_duration", "state_durations"]

logger = logging.getLogger(__name__)

STATE_DURATION = "pipeline_state_duration_seconds"


class QuotaCollector(Collector):
    """Today's quota gauges of one scheduler, computed at each scrape.

    :param scheduler: whose job table and clock (the Vietnam day) are read.
    :param settings: reads the pipeline settings (their ``daily_quota``); a SettingsError
        leaves out the limit and the remaining, logged once until the settings read again.
    """

    def __init__(self, scheduler: Scheduler, settings: Callable[[], PipelineSettings]) -> None:
        self._scheduler = scheduler
        self._settings = settings
        self._broken = False

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("video_quota_used", "Videos using a slot of today's quota (Vietnam day)."),
            GaugeMetricFamily("video_quota_remaining", "Videos today's quota still allows."),
            GaugeMetricFamily("video_quota_limit", "Videos a day's quota allows (DAILY_QUOTA)."),
        )

    def collect(self) -> Iterator[Metric]:
        used_family, remaining_family, limit_family = self._families()
        now = self._scheduler.clock()
        today = vietnam_today(now)
        # in UTC, as the jobs' times are: comparing across zones costs an offset lookup each
        start = datetime.combine(today, time(0), tzinfo=VIETNAM_TZ).astimezone(timezone.utc)
        end = start + timedelta(days=1)  # Vietnam keeps no DST: a day is 24 h
        # only today's jobs reach the count: it is the same, and a scrape stays cheap
        todays = [job for job in self._scheduler.jobs_snapshot(VIDEO_KIND) if start <= job.scheduled_time < end]
        used = count_for_day(todays, today)
        used_family.add_metric([], used)
        yield used_family
        try:
            quota = self._settings().daily_quota
        except SettingsError as exc:
            if not self._broken:
                logger.warning("quota metrics without a limit: the settings are broken: %s", exc)
            self._broken = True
            return
        self._broken = False
        result = quota_result(quota, used)
        remaining_family.add_metric([], result["remaining"])
        limit_family.add_metric([], result["quota"])
        yield remaining_family
        yield limit_family


def state_durations(scheduler: Scheduler) -> Histogram:
    """The ``pipeline_state_duration_seconds`` histogram of ``scheduler`` (made on first use)."""
    return metrics_for(scheduler).histogram(
        STATE_DURATION, "How long each Task state's stage ran, when it returned.", ["state"]
    )


def record_state_duration(scheduler: Scheduler, state: str, seconds: float) -> None:
    """One Task state of one of ``scheduler``'s runs finished after ``seconds``."""
    state_durations(scheduler).labels(state=state).observe(max(seconds, 0.0))


def install_metrics(scheduler: Scheduler, settings: Callable[[], PipelineSettings]) -> None:
    """Add the quota gauges and the state-duration histogram to the scheduler's registry."""
    register_collector(scheduler, QuotaCollector(scheduler, settings))
    state_durations(scheduler)
