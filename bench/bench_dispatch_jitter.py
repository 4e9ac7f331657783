"""Dispatch jitter: how late the loop starts due jobs, with 100,000 jobs stored.

The 100,000 dataset jobs are all in the future (from tomorrow on), so none runs. A
Scheduler (default max_concurrent_jobs=1) is loaded and started; 500 jobs of kind "noop"
are added up front, due at staggered times over 10 s starting 3 s later (adding them takes
~1.5 s, each add_job being durable; the script says if adding overran the lead). The noop
handler records the wall clock when it is called. Jitter = handler call time - scheduled_time.

Comparison, in the same run: a bare asyncio timer (``loop.call_at`` at the same 500
offsets), recording how late each callback fires; the floor the event loop itself gives.

Target: scheduler jitter p99 <= 10 ms.
Run: .venv/bin/python bench/bench_dispatch_jitter.py   (about 30 s)
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import datetime, timedelta

from _dataset import make_dataset, temp_dir
from _stats import percentile, verdict

from services.scheduler.clock import utc_now
from services.scheduler.handlers import default_registry
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler

N_JOBS = 100_000
DAYS = 365
N_DUE = 500
LEAD_SECONDS = 3.0  # adding 500 jobs durably takes ~1.5 s; all must be in before the first is due
SPREAD_SECONDS = 10.0
TIMEOUT_SECONDS = 25.0
TARGET_P99_MS = 10.0


def staggered_offsets(seed: int = 42) -> list[float]:
    """N_DUE sorted offsets (seconds), uniform within SPREAD_SECONDS."""
    rng = random.Random(seed)
    return sorted(rng.uniform(0.0, SPREAD_SECONDS) for _ in range(N_DUE))


class NoopRecorder:
    """The "noop" kind: ``handle`` records each call's lateness; ``done`` is set after N_DUE."""

    def __init__(self) -> None:
        self.lateness_ms: dict[str, float] = {}
        self.done = asyncio.Event()

    async def handle(self, job: ScheduledJob) -> None:
        called: datetime = utc_now()
        self.lateness_ms[job.job_id] = (called - job.scheduled_time).total_seconds() * 1000
        if len(self.lateness_ms) >= N_DUE:
            self.done.set()


async def scheduler_jitter(data_dir: str, offsets: list[float]) -> list[float]:
    """Run the scheduler over the due jobs; return each job's lateness in ms."""
    recorder = NoopRecorder()
    registry = default_registry()
    registry.register("noop", recorder.handle)
    scheduler = Scheduler(data_dir, registry=registry)
    started = time.perf_counter()
    count = scheduler.load()
    print(f"scheduler loaded {count} jobs in {time.perf_counter() - started:.2f} s")
    await scheduler.start()
    base = utc_now() + timedelta(seconds=LEAD_SECONDS)
    started = time.perf_counter()
    for n, offset in enumerate(offsets):
        scheduler.add_job(
            "bench",
            f"Chương {n}: Xin chào các bạn",
            scheduled_time=base + timedelta(seconds=offset),
            kind="noop",
        )
    adding = time.perf_counter() - started
    overran = " -- OVERRAN: early jobs were due before they were added" if adding > LEAD_SECONDS else ""
    print(
        f"added {N_DUE} noop jobs in {adding:.2f} s (first due {LEAD_SECONDS:g} s after adding began){overran}"
    )
    try:
        await asyncio.wait_for(recorder.done.wait(), TIMEOUT_SECONDS)
    except TimeoutError:
        print(f"timeout: only {len(recorder.lateness_ms)} of {N_DUE} noop jobs ran in {TIMEOUT_SECONDS:g} s")
    await scheduler.stop()
    return list(recorder.lateness_ms.values())


async def bare_timer_jitter(offsets: list[float]) -> list[float]:
    """Lateness (ms) of plain loop.call_at callbacks at the same offsets."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    finished = loop.create_future()

    def fire(target: float) -> None:
        lateness.append((loop.time() - target) * 1000)
        if len(lateness) == len(offsets):
            finished.set_result(None)

    base = loop.time() + LEAD_SECONDS
    for offset in offsets:
        loop.call_at(base + offset, fire, base + offset)
    await finished
    return lateness


def report(name: str, lateness: list[float]) -> float:
    """Print p50/p99/max lateness (ms); return p99."""
    p50, p99 = percentile(lateness, 50), percentile(lateness, 99)
    print(
        f"{name:<10} n={len(lateness):<4} p50={p50:8.2f} ms  p99={p99:8.2f} ms  max={max(lateness):8.2f} ms"
    )
    return p99


async def run(data_dir: str) -> tuple[list[float], list[float]]:
    """Scheduler lateness, then bare-timer lateness, at the same offsets."""
    offsets = staggered_offsets()
    return await scheduler_jitter(data_dir, offsets), await bare_timer_jitter(offsets)


def main() -> None:
    with temp_dir("bench-dispatch-") as data_dir:
        started = time.perf_counter()
        files = make_dataset(data_dir, N_JOBS, DAYS)
        os.sync()
        print(f"dataset: {N_JOBS} jobs in {files} files, built in {time.perf_counter() - started:.1f} s")
        ours, bare = asyncio.run(run(str(data_dir)))
    ours_p99 = report("scheduler", ours)
    bare_p99 = report("bare timer", bare)
    ok = len(ours) == N_DUE and ours_p99 <= TARGET_P99_MS
    print(
        f"{verdict(ok)}: scheduler jitter p99 {ours_p99:.2f} ms <= {TARGET_P99_MS:g} ms ({len(ours)}/{N_DUE} ran)"
    )
    print(
        f"SUMMARY dispatch jitter: scheduler p99={ours_p99:.2f} ms, bare timer p99={bare_p99:.2f} ms "
        f"-> {verdict(ok)}"
    )


if __name__ == "__main__":
    main()
