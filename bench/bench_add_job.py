"""add_job latency with 100,000 stored jobs in 365 daily files.

Measures:
  ours      -- ``Scheduler(data_dir).load()`` then 500 ``add_job`` calls at random times
               within the next 365 days; each call validates, writes the one changed day
               file durably (fsync + rename) and returns.
  baseline  -- the seed's "rewrite every file on each save": the same ``add_job`` on a
               ``JobStorage`` whose flush rewrites every day that holds jobs (365 files);
               20 calls.

Targets: ours p50 <= 5 ms, and baseline p50 / ours p50 >= 100x.
Run: .venv/bin/python bench/bench_add_job.py   (about a minute)
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from _dataset import make_dataset, temp_dir
from _stats import percentile, verdict

from services.scheduler.clock import DEFAULT_TIMEZONE, load_timezone, utc_now
from services.scheduler.job_manager import JobManager
from services.scheduler.scheduler import Scheduler
from services.scheduler.storage import JobStorage

N_JOBS = 100_000
DAYS = 365
OURS_CALLS = 500
BASELINE_CALLS = 20
TARGET_P50_MS = 5.0
TARGET_RATIO = 100.0
CONTENT = "Chương 12: Xin chào các bạn"


class RewriteAllStorage(JobStorage):
    """The seed's save: every flush serializes every job and rewrites every day file."""

    def flush(self) -> int:
        self._dirty.update(day for day, ids in self._members.items() if ids)
        self._fragments.clear()  # the seed keeps no serialized copies between saves
        return super().flush()


def random_times(count: int, seed: int = 42) -> list[timedelta]:
    """Offsets from now, uniform within the schedule window (a minute of margin each end)."""
    rng = random.Random(seed)
    low, high = 60.0, DAYS * 86400.0 - 60.0
    return [timedelta(seconds=rng.uniform(low, high)) for _ in range(count)]


def time_calls(add: Callable[..., object], offsets: list[timedelta]) -> list[float]:
    """Call ``add(account, content, scheduled_time)`` once per offset; return ms per call."""
    latencies = []
    for n, offset in enumerate(offsets):
        when: datetime = utc_now() + offset
        start = time.perf_counter()
        add("bench", f"{CONTENT} #{n}", when)
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def bench_ours(data_dir: Path) -> list[float]:
    """add_job latencies through the Scheduler (only the changed day is written)."""
    scheduler = Scheduler(data_dir)
    scheduler.load()
    return time_calls(scheduler.add_job, random_times(OURS_CALLS))


def bench_baseline(data_dir: Path) -> list[float]:
    """add_job latencies with every day file rewritten on each save."""
    manager = JobManager(RewriteAllStorage(data_dir, load_timezone(DEFAULT_TIMEZONE)))
    manager.load()
    return time_calls(manager.add_job, random_times(BASELINE_CALLS))


def report(name: str, latencies: list[float]) -> float:
    """Print p50/p99/max of ``latencies`` (ms); return p50."""
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"{name:<9} n={len(latencies):<4} p50={p50:9.2f} ms  p99={p99:9.2f} ms  max={max(latencies):9.2f} ms"
    )
    return p50


def main() -> None:
    with temp_dir("bench-add-job-") as root:
        ours_dir, baseline_dir = root / "ours", root / "baseline"
        started = time.perf_counter()
        files = make_dataset(ours_dir, N_JOBS, DAYS)
        shutil.copytree(ours_dir, baseline_dir)
        os.sync()  # so the copy's writeback does not compete with the timed fsyncs
        print(f"dataset: {N_JOBS} jobs in {files} files, built in {time.perf_counter() - started:.1f} s")
        ours_p50 = report("ours", bench_ours(ours_dir))
        baseline_p50 = report("baseline", bench_baseline(baseline_dir))
    ratio = baseline_p50 / ours_p50
    p50_ok, ratio_ok = ours_p50 <= TARGET_P50_MS, ratio >= TARGET_RATIO
    print(f"ratio baseline_p50 / ours_p50 = {ratio:.0f}x")
    print(f"{verdict(p50_ok)}: ours p50 {ours_p50:.2f} ms <= {TARGET_P50_MS:g} ms")
    print(f"{verdict(ratio_ok)}: ratio {ratio:.0f}x >= {TARGET_RATIO:g}x")
    print(
        f"SUMMARY add_job: ours p50={ours_p50:.2f} ms, baseline p50={baseline_p50:.1f} ms, "
        f"ratio={ratio:.0f}x -> {verdict(p50_ok and ratio_ok)}"
    )


if __name__ == "__main__":
    main()
