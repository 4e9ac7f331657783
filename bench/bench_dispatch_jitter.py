"""Dispatch jitter: how late the loop starts due jobs, with 100,000 jobs stored.

One run: in a fresh child process (this script with ``--child``) and a fresh temp data
dir, the 100,000 dataset jobs are written, all in the future (from tomorrow on), so none
runs. A Scheduler (default max_concurrent_jobs=1) is loaded and started; 500 jobs of kind
"noop" are added up front, due at staggered times over 10 s starting a lead later. Each
add_job is durable (1-3 ms here, more on a busy disk), so the lead is set from 20 pilot
adds (jobs due months ahead, which never run): three times their rate for 500, at least
3 s. A run whose adds still overran the lead (early jobs were due before they existed,
and the adds held the loop inside the measured window) measured the bench, not the
dispatch: it is shown, marked OVERRAN, and run again (up to MAX_REPEATS times in all).
The noop handler records the wall clock when it is called. Jitter = handler call time -
scheduled_time.

Comparison, in the same run: a bare asyncio timer (``loop.call_at`` at the same 500
offsets), recording how late each callback fires; the floor the event loop itself gives.

The whole run is repeated ``--runs`` times (default 10), each in its own process, and the
verdict is taken on the worst run, so one lucky run cannot hide a stall that comes in
some runs only. Each run prints p50/p99/max of both and the ratio scheduler p99 / bare
timer p99; the summary gives the worst scheduler p99 and that run's ratio.

Each run also prints what to look at when it is slow:
  GC after load -- the longest collector pass from the end of the load to the last noop
      job, and what one full collection takes then (measured right after that job). Before
      ``gc_pause.py`` froze the loaded jobs, a full collection walked all of them, 0.2-0.6
      s with the loop held, and came at a moment set by allocation counts: inside the
      measured 10 s in about half the runs.
  machine -- vCPU time stolen by the host and time tasks stalled on I/O (Linux PSI) from
      the end of the adds to the last noop job. Each outcome is one fsynced rewrite of
      the day file, on the writer thread. A run used to hold the one run slot until then,
      so on a busy host or disk the next job waited behind the fsync: 41-516 ms p99 in
      the worst of 10 runs. Now the slot is freed when the handler returns
      (execution.py), and what is left of a busy machine is its share of the CPU (the
      writer thread and the loop compete for 2 vCPUs, some of it stolen by the host).

Target: scheduler jitter p99 <= 10 ms in every run.
Run: .venv/bin/python bench/bench_dispatch_jitter.py [--runs N]   (about 35 s a run)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from _dataset import make_dataset, temp_dir
from _stats import percentile, verdict

from services.scheduler.clock import utc_now
from services.scheduler.handlers import default_registry
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler

N_JOBS = 100_000
DAYS = 365
N_DUE = 500
LEAD_SECONDS = 3.0  # the least lead; adding 500 jobs durably takes ~1.5 s on a quiet disk
PILOT_ADDS = 20
SPREAD_SECONDS = 10.0
TIMEOUT_SECONDS = 25.0
TARGET_P99_MS = 10.0
DEFAULT_RUNS = 10
MAX_REPEATS = 5  # runs repeated because their adds overran the lead, at most
CHILD_TIMEOUT_SECONDS = 300.0


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


class GcWatch:
    """The longest garbage-collector pass while ``active`` (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.active = False
        self.longest_ms = 0.0
        self.longest_generation = -1
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.active:
            ms = (time.perf_counter() - self._started) * 1000
            if ms > self.longest_ms:
                self.longest_ms, self.longest_generation = ms, info["generation"]


def machine_ms() -> dict[str, float]:
    """Time this machine lost to others so far (ms): vCPU steal, and tasks stalled on I/O.

    From /proc/stat and /proc/pressure/io (Linux); a counter that cannot be read is 0.
    """
    counters = {"steal": 0.0, "io_stall": 0.0}
    try:
        with open("/proc/stat") as stat:
            steal_ticks = int(stat.readline().split()[8])
        counters["steal"] = steal_ticks * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open("/proc/pressure/io") as pressure:
            counters["io_stall"] = int(pressure.readline().rsplit("total=", 1)[1]) / 1000
    except (OSError, IndexError, ValueError):
        pass
    return counters


def add_lead(scheduler: Scheduler) -> float:
    """Seconds from now to the first due job: three times what PILOT_ADDS adds say N_DUE take."""
    far = utc_now() + timedelta(days=200)  # in the dataset's range; never due in the bench
    started = time.perf_counter()
    for n in range(PILOT_ADDS):
        scheduler.add_job("bench", f"pilot {n}", scheduled_time=far, kind="noop")
    per_add = (time.perf_counter() - started) / PILOT_ADDS
    return max(LEAD_SECONDS, 3.0 * per_add * N_DUE)


async def scheduler_jitter(data_dir: str, offsets: list[float], facts: dict[str, Any]) -> list[float]:
    """Run the scheduler over the due jobs; return each job's lateness in ms."""
    recorder = NoopRecorder()
    registry = default_registry()
    registry.register("noop", recorder.handle)
    scheduler = Scheduler(data_dir, registry=registry)
    watch = GcWatch()
    gc.callbacks.append(watch)
    started = time.perf_counter()
    facts["loaded"] = scheduler.load()
    facts["load_s"] = time.perf_counter() - started
    watch.active = True  # from here on a collection would be one over the loaded jobs
    await scheduler.start()
    facts["lead_s"] = add_lead(scheduler)
    base = utc_now() + timedelta(seconds=facts["lead_s"])
    started = time.perf_counter()
    for n, offset in enumerate(offsets):
        scheduler.add_job(
            "bench",
            f"Chương {n}: Xin chào các bạn",
            scheduled_time=base + timedelta(seconds=offset),
            kind="noop",
        )
    facts["add_s"] = time.perf_counter() - started
    machine_before = machine_ms()  # the adds' own fsyncs are not counted
    try:
        await asyncio.wait_for(recorder.done.wait(), TIMEOUT_SECONDS)
    except TimeoutError:
        pass  # the parent reports how many ran
    machine_after = machine_ms()
    watch.active = False
    gc.callbacks.remove(watch)
    facts["gc_ms"], facts["gc_generation"] = watch.longest_ms, watch.longest_generation
    facts["steal_ms"] = machine_after["steal"] - machine_before["steal"]
    facts["io_stall_ms"] = machine_after["io_stall"] - machine_before["io_stall"]
    # what the collector would hold the loop for, whenever it next runs a full collection
    started = time.perf_counter()
    gc.collect()
    facts["full_gc_ms"] = (time.perf_counter() - started) * 1000
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


async def measure(data_dir: str, facts: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Scheduler lateness, then bare-timer lateness, at the same offsets."""
    offsets = staggered_offsets()
    return await scheduler_jitter(data_dir, offsets, facts), await bare_timer_jitter(offsets)


def child() -> None:
    """One run in this process: build the dataset, measure, print the figures as JSON."""
    facts: dict[str, Any] = {}
    with temp_dir("bench-dispatch-") as data_dir:
        started = time.perf_counter()
        facts["files"] = make_dataset(data_dir, N_JOBS, DAYS)
        os.sync()
        facts["build_s"] = time.perf_counter() - started
        ours, bare = asyncio.run(measure(str(data_dir), facts))
    print(json.dumps({"facts": facts, "ours": ours, "bare": bare}))


def run_child() -> dict[str, Any]:
    """One run in a fresh interpreter; return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child"],
        check=True,
        stdout=subprocess.PIPE,  # stderr passes through: a failing run shows why
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def stats(lateness: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max lateness (ms); NaN if nothing ran."""
    if not lateness:
        return float("nan"), float("nan"), float("nan")
    return percentile(lateness, 50), percentile(lateness, 99), max(lateness)


def overran(result: dict[str, Any]) -> bool:
    """Whether the run's adds were still going when its first jobs were due."""
    return result["facts"]["add_s"] > result["facts"]["lead_s"]


def report_run(n: int, runs: int, result: dict[str, Any]) -> tuple[float, float, bool]:
    """Print one run; return its scheduler p99, bare-timer p99 and whether all jobs ran."""
    facts, ours, bare = result["facts"], result["ours"], result["bare"]
    o50, o99, omax = stats(ours)
    b50, b99, bmax = stats(bare)
    late = " OVERRAN: early jobs were due before they were added" if overran(result) else ""
    missing = f" TIMEOUT: only {len(ours)} of {N_DUE} ran" if len(ours) < N_DUE else ""
    gc_pass = (
        f"gen{facts['gc_generation']} {facts['gc_ms']:.1f} ms" if facts["gc_generation"] >= 0 else "none"
    )
    print(
        f"run {n:>2}/{runs}: scheduler p50={o50:6.2f} p99={o99:7.2f} max={omax:7.2f} ms | "
        f"bare timer p50={b50:5.2f} p99={b99:6.2f} max={bmax:6.2f} ms | p99 ratio {o99 / b99:5.2f}x"
    )
    print(
        f"        load {facts['load_s']:.2f} s ({facts['loaded']} jobs), added {N_DUE} in {facts['add_s']:.2f} s "
        f"(lead {facts['lead_s']:.1f} s), "
        f"GC after load: longest pass {gc_pass}, a full one {facts['full_gc_ms']:.1f} ms{late}{missing}",
    )
    print(
        f"        machine from the last add to the last job: vCPU steal {facts['steal_ms']:.0f} ms, "
        f"tasks stalled on I/O {facts['io_stall_ms']:.0f} ms",
        flush=True,
    )
    return o99, b99, len(ours) == N_DUE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs (default {DEFAULT_RUNS})")
    runs = max(1, parser.parse_args().runs)
    print(
        f"dispatch jitter: {runs} runs, each a fresh process and data dir with {N_JOBS} jobs in {DAYS} days"
    )
    figures, repeated = [], 0
    while len(figures) < runs:
        result = run_child()
        if overran(result) and repeated < MAX_REPEATS:
            repeated += 1
            report_run(len(figures) + 1, runs, result)
            print(f"        run {len(figures) + 1} is run again: its adds overran the lead ({repeated} so far)")
            continue
        figures.append(report_run(len(figures) + 1, runs, result))
    ours_p99s = [o for o, _, _ in figures]
    worst = max(range(runs), key=lambda i: ours_p99s[i])
    worst_p99, worst_bare = figures[worst][0], figures[worst][1]
    all_ran = all(ran for _, _, ran in figures)
    ok = all_ran and worst_p99 <= TARGET_P99_MS
    print("scheduler p99 by run: " + ", ".join(f"{p:.2f}" for p in ours_p99s) + " ms")
    print("bare timer p99 by run: " + ", ".join(f"{b:.2f}" for _, b, _ in figures) + " ms")
    print(
        f"{verdict(ok)}: worst scheduler jitter p99 {worst_p99:.2f} ms (run {worst + 1}) <= {TARGET_P99_MS:g} ms"
        + ("" if all_ran else " -- some runs did not run every job")
        + (f" ({repeated} run(s) repeated: their adds overran the lead)" if repeated else "")
    )
    print(
        f"SUMMARY dispatch jitter ({runs} runs): worst scheduler p99={worst_p99:.2f} ms, "
        f"bare timer p99 in that run={worst_bare:.2f} ms ({worst_p99 / worst_bare:.2f}x), "
        f"worst bare timer p99={max(b for _, b, _ in figures):.2f} ms -> {verdict(ok)}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
