"""Cold start: load 100,000 jobs from 365 daily files.

Each loader runs in a fresh child process (this script with ``--child``), so its peak RSS
is that of a process that only imports the scheduler and loads:
  ours   -- ``Scheduler(data_dir).load()``: whole-file validation in pydantic-core, the
            due-time index and start-up recovery.
  naive  -- for each file ``json.loads`` then ``ScheduledJob.model_validate`` per record.
Peak RSS is ``ru_maxrss`` of the child (includes the interpreter and imports; the RSS
after imports is printed too). On Linux a child's ru_maxrss starts at its parent's RSS at
fork, so the dataset is built in a child as well and this parent stays small (~30 MB).
The files are in the page cache (just written), so this is a warm-cache cold start.
Each loader runs REPEATS times, alternating; the figures are medians.

Targets (ours): load <= 2 s, peak RSS <= 300 MB.
Run: .venv/bin/python bench/bench_cold_start.py   (about 30 s)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _dataset import make_dataset, temp_dir
from _stats import verdict

N_JOBS = 100_000
DAYS = 365
REPEATS = 3  # fresh children per loader; the median is reported
TARGET_SECONDS = 2.0
TARGET_RSS_MB = 300.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_ours(data_dir: Path) -> int:
    """The scheduler's own cold start."""
    from services.scheduler.scheduler import Scheduler

    return Scheduler(data_dir).load()


def load_naive(data_dir: Path) -> int:
    """A straightforward loader: json.loads each file, validate each record."""
    from services.scheduler.models import ScheduledJob

    jobs = {}
    for path in sorted((data_dir / "jobs").glob("jobs_*.json")):
        for job_id, record in json.loads(path.read_bytes())["jobs"].items():
            jobs[job_id] = ScheduledJob.model_validate(record)
    return len(jobs)


def build(data_dir: Path) -> int:
    """Write the dataset; return the files written."""
    count = make_dataset(data_dir, N_JOBS, DAYS)
    os.sync()
    return count


TASKS = {"build": build, "ours": load_ours, "naive": load_naive}
LOADERS = ("ours", "naive")


def child(task: str, data_dir: Path) -> None:
    """Run one task and print its figures as one JSON line."""
    import services.scheduler.scheduler  # noqa: F401 - imports are not part of the load time

    rss_before = peak_rss_mb()
    start = time.perf_counter()
    count = TASKS[task](data_dir)
    seconds = time.perf_counter() - start
    print(
        json.dumps({"count": count, "seconds": seconds, "rss_mb": peak_rss_mb(), "rss_before_mb": rss_before})
    )


def run_child(task: str, data_dir: Path) -> dict[str, float]:
    """Run ``task`` in a fresh interpreter; return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(data_dir: Path) -> dict[str, dict[str, float]]:
    """Median figures of each loader over REPEATS alternating child runs."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LOADERS}
    for _ in range(REPEATS):
        for name in LOADERS:
            runs[name].append(run_child(name, data_dir))
    for name, rs in runs.items():
        print(f"{name:<6} load runs: " + ", ".join(f"{r['seconds']:.2f} s" for r in rs))
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}


def main() -> None:
    with temp_dir("bench-cold-start-") as data_dir:
        made = run_child("build", data_dir)
        print(f"dataset: {N_JOBS} jobs in {made['count']} files, built in {made['seconds']:.1f} s")
        results = measure(data_dir)
    for name, r in results.items():
        print(
            f"{name:<6} jobs={r['count']:.0f}  load={r['seconds']:.2f} s  "
            f"peak RSS={r['rss_mb']:.0f} MB (after imports {r['rss_before_mb']:.0f} MB)"
        )
    ours, naive = results["ours"], results["naive"]
    print(
        f"naive / ours: time {naive['seconds'] / ours['seconds']:.2f}x, "
        f"peak RSS {naive['rss_mb'] / ours['rss_mb']:.2f}x"
    )
    time_ok, rss_ok = ours["seconds"] <= TARGET_SECONDS, ours["rss_mb"] <= TARGET_RSS_MB
    print(f"{verdict(time_ok)}: ours load {ours['seconds']:.2f} s <= {TARGET_SECONDS:g} s")
    print(f"{verdict(rss_ok)}: ours peak RSS {ours['rss_mb']:.0f} MB <= {TARGET_RSS_MB:g} MB")
    print(
        f"SUMMARY cold start: ours {ours['seconds']:.2f} s / {ours['rss_mb']:.0f} MB, "
        f"naive {naive['seconds']:.2f} s / {naive['rss_mb']:.0f} MB -> {verdict(time_ok and rss_ok)}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
