"""Real processes: kill -9 while saving, concurrent CLIs, one daemon per dir, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from services.scheduler.clock import load_timezone
from services.scheduler.lock import read_holder
from services.scheduler.storage import JobStorage

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, str(ROOT / "run_scheduler.py")]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "API_PORT")}
    env.update({"DATA_DIR": str(data_dir), "API_PORT": "0", "PYTHONPATH": str(ROOT)}, **extra)
    return env


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env_for(data_dir), capture_output=True, text=True, timeout=60)


def load_jobs(data_dir: Path) -> dict:
    return JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")).load()


class Daemon:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*CLI, "run"], env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_ready(self, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            holder = read_holder(self.data_dir)
            if holder and holder.get("ready") and holder.get("pid") == self.proc.pid:
                return holder
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.proc.communicate()}")
            time.sleep(0.02)
        raise AssertionError("daemon did not become ready")

    def terminate(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture
def daemon(data_dir: Path):
    started = Daemon(data_dir)
    started.wait_ready()
    yield started
    if started.proc.poll() is None:
        started.proc.kill()
        started.proc.wait()


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, timezone
    from services.scheduler.clock import load_timezone
    from services.scheduler.job_manager import JobManager
    from services.scheduler.storage import JobStorage

    manager = JobManager(JobStorage(sys.argv[1], load_timezone("Asia/Ho_Chi_Minh")))
    manager.load()
    base = datetime.now(timezone.utc)
    i = 0
    while True:
        # a handful of days, each holding many jobs, so most time is spent saving
        when = base + timedelta(days=i % 3, seconds=i)
        job = manager.add_job("acc", f"Chương {i}: nội dung " + "x" * 200, when)
        print(job.job_id, flush=True)  # acknowledged: add_job returned after the flush
        i += 1
    """
)


def test_kill_9_while_saving_loses_no_acknowledged_job(data_dir: Path) -> None:
    acknowledged: list[str] = []
    for round_number in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data_dir)],
            env=env_for(data_dir), stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        target = 40 + 37 * round_number
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            acknowledged.append(line.strip())
            seen += 1
            if seen >= target:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # whatever was printed before the kill was flushed to disk
        jobs = load_jobs(data_dir)
        missing = [job_id for job_id in acknowledged if job_id not in jobs]
        assert missing == [], f"round {round_number}: lost {len(missing)} acknowledged jobs"
        assert not list((data_dir / "jobs").glob("*.corrupt-*"))
    assert len(acknowledged) > 400


def test_four_cli_processes_add_while_the_daemon_runs(data_dir: Path, daemon: Daemon) -> None:
    per_process = 6
    script = "; ".join(
        ["import subprocess, sys"]
        + [f"subprocess.run({CLI!r} + ['add-job', '--kind', 'log', '--account', 'p' + sys.argv[1], '--content', 'job {n}'], check=True)"
           for n in range(per_process)]
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(p)], env=env_for(data_dir),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in range(4)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids += out.split()
    assert len(set(ids)) == 4 * per_process
    listed = cli(data_dir, "list", "--json")
    assert listed.returncode == 0
    assert {job["job_id"] for job in json.loads(listed.stdout)} == set(ids)
    code, _, err = daemon.terminate()
    assert code == 0, err
    jobs = load_jobs(data_dir)
    assert set(ids) <= set(jobs)
    assert all(jobs[job_id].status.value == "completed" for job_id in ids)


def test_four_cli_processes_without_a_daemon_take_turns(data_dir: Path) -> None:
    procs = [
        subprocess.Popen([*CLI, "add-job", "--kind", "log", "--account", "a", "--content", f"job {n}"], env=env_for(data_dir),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    assert set(load_jobs(data_dir)) == set(ids)


def test_second_daemon_is_refused_naming_the_holder(data_dir: Path, daemon: Daemon) -> None:
    second = subprocess.run([*CLI, "run"], env=env_for(data_dir), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"is locked by daemon pid {daemon.proc.pid}" in second.stderr
    assert second.stderr.count("\n") == 1


def test_sigterm_exits_0_with_state_saved(data_dir: Path, daemon: Daemon) -> None:
    added = cli(data_dir, "add-job", "--kind", "log", "--account", "a", "--content", "Xin chào", "--json")
    assert added.returncode == 0, added.stderr
    job_id = json.loads(added.stdout)["job_id"]
    future = cli(data_dir, "add-job", "--kind", "log", "--account", "a", "--content", "sau", "--at", "2026-12-31T08:00")
    deadline = time.monotonic() + 20
    while json.loads(cli(data_dir, "show", job_id, "--json").stdout)["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out, err = daemon.terminate()
    assert code == 0, err
    logs = [json.loads(line) for line in out.splitlines()]
    assert any(entry["msg"] == "signal received; stopping" for entry in logs)
    assert logs[-1]["msg"] != "" and all("job_id" in e for e in logs if e["msg"].startswith("job "))
    jobs = load_jobs(data_dir)
    assert jobs[job_id].status.value == "completed"
    assert jobs[future.stdout.strip()].status.value == "scheduled"
    # the lock is free again: the CLI now works on the files directly
    assert cli(data_dir, "show", job_id).returncode == 0
    assert read_holder(data_dir) is None


def test_cli_errors_through_the_daemon_match_direct_mode(data_dir: Path, daemon: Daemon) -> None:
    bad = cli(data_dir, "add-job", "--account", "a", "--content", "x" * 501)
    assert (bad.returncode, bad.stderr) == (2, "error: content: must be at most 500 characters (got 501)\n")
    missing = cli(data_dir, "remove", "nope")
    assert (missing.returncode, missing.stderr) == (1, "error: job not found: nope\n")


SLOW_ONCE = textwrap.dedent(
    """
    import asyncio, sys
    from services.scheduler.daemon import serve
    from services.scheduler.handlers import default_registry
    from services.scheduler.log_format import configure_logging
    from services.scheduler.settings import Settings

    async def slow(job):
        print("started", flush=True)
        await asyncio.sleep(60)

    registry = default_registry()
    registry.register("slow", slow)
    configure_logging("WARNING", sys.stderr)
    settings = Settings.from_env(data_dir=sys.argv[1])
    with __import__("services.scheduler.lock", fromlist=["x"]).DataDirLock(sys.argv[1], "cli"):
        from services.scheduler.scheduler import Scheduler
        s = Scheduler.from_settings(settings, registry=registry)
        s.load()
        print(s.add_job("a", "slow job", kind="slow").job_id, flush=True)
    sys.exit(asyncio.run(serve(settings, registry=registry, once=True)))
    """
)


def test_sigterm_during_run_once_saves_the_job_back_to_scheduled(data_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_ONCE, str(data_dir)], env=env_for(data_dir, SHUTDOWN_GRACE_SECONDS="0.2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    job = load_jobs(data_dir)[job_id]
    assert job.status.value == "scheduled" and job.retry_count == 0
    assert job.error.startswith("interrupted by shutdown")


def test_daemon_waits_for_a_cli_command_holding_the_lock(data_dir: Path) -> None:
    from services.scheduler.lock import DataDirLock

    with DataDirLock(data_dir, "cli"):
        started = Daemon(data_dir)
        time.sleep(0.3)
        assert started.proc.poll() is None  # still waiting, not refused
    try:
        started.wait_ready()
    finally:
        code, _, err = started.terminate()
    assert code == 0, err
