"""Real processes: kill -9 while saving, concurrent CLIs, one daemon per dir, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
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
    """``run_scheduler.py run`` as a child; its stdout (JSON log lines) and stderr read as they come."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*CLI, "run"], env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._arrived = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        with stream:
            for line in stream:
                with self._arrived:
                    lines.append(line)
                    self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def _finished(self) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=30)
        return code, "".join(self.out), "".join(self.err)

    def wait_for_log(self, msg: str, timeout: float = 20.0) -> dict:
        """The first log entry with this ``msg``, once the daemon has written it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for line in self.out:
                    entry = json.loads(line) if line.startswith("{") else {}
                    if entry.get("msg") == msg:
                        return entry
                if not self._readers[0].is_alive():  # its stdout is closed: it has exited
                    break
                if time.monotonic() >= deadline:
                    raise AssertionError(f"daemon did not log {msg!r} in {timeout} s: {self.out}")
                self._arrived.wait(timeout=0.05)
        raise AssertionError(f"daemon exited before logging {msg!r}: {self._finished()}")

    def wait_ready(self, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            holder = read_holder(self.data_dir)
            if holder and holder.get("ready") and holder.get("pid") == self.proc.pid:
                return holder
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self._finished()}")
            time.sleep(0.02)
        raise AssertionError("daemon did not become ready")

    def terminate(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self._finished()


@pytest.fixture
def daemon(data_dir: Path):
    started = Daemon(data_dir)
    started.wait_ready()
    yield started
    if started.proc.poll() is None:
        started.proc.kill()
        started.proc.wait()


WRITE_OPENS = textwrap.dedent(
    """
    import os, sys

    def write_opens(jobs_dir, on_open):
        # call on_open(n, path) at the n-th open for writing of a file under jobs_dir, in any
        # thread, just before the file is opened (the "open" audit event), however the writer
        # is implemented (builtin open, os.open, pathlib)
        jobs_dir = os.path.join(os.path.abspath(jobs_dir), "")
        count = [0]

        def hook(event, args):
            if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
                return
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(jobs_dir) and (args[2] or 0) & (os.O_WRONLY | os.O_RDWR):
                count[0] += 1
                on_open(count[0], path)

        sys.addaudithook(hook)
        return hook
    """
)

WRITER = WRITE_OPENS + textwrap.dedent(
    """
    import os, sys, time
    from datetime import datetime, timedelta, timezone

    data_dir, pause_at = sys.argv[1], int(sys.argv[2])

    def paused(frame, event, arg):
        # the first thing this thread does once the open returned: the file is open for
        # writing (an in-place rewrite has truncated it), nothing new is in it yet; stop
        # here and let the parent kill
        if frame.f_code in (hook.__code__, on_open.__code__):  # still leaving the audit hook
            return
        sys.setprofile(None)
        print("in the write window:", opened[0], flush=True)
        time.sleep(60)

    opened = [None]

    def on_open(n, path):
        if n == pause_at:
            opened[0] = path
            sys.setprofile(paused)  # this thread only: the one about to write

    hook = write_opens(os.path.join(data_dir, "jobs"), on_open)

    from services.scheduler.clock import load_timezone
    from services.scheduler.job_manager import JobManager
    from services.scheduler.storage import JobStorage

    manager = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")))
    manager.load()
    base = datetime.now(timezone.utc)
    i = 0
    while True:
        # a handful of days, each holding many jobs: a rewrite of one loses many if torn
        when = base + timedelta(days=i % 3, seconds=i)
        job = manager.add_job("acc", f"Chương {i}: nội dung " + "x" * 200, when)
        print(job.job_id, flush=True)  # acknowledged: add_job returned after the flush
        i += 1
    """
)


@pytest.mark.parametrize("pause_at", [5, 24, 52, 78, 121, 160])
def test_kill_9_inside_a_write_loses_no_acknowledged_job(data_dir: Path, pause_at: int) -> None:
    """Killed between opening a day file for writing and finishing it, at the pause_at-th write."""
    acknowledged: list[str] = []
    for round_number in range(2):  # the second round starts from what the first left
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data_dir), str(pause_at + round_number)],
            env=env_for(data_dir), stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        assert proc.stdout is not None
        window = None
        for line in proc.stdout:
            if line.startswith("in the write window:"):
                window = line.split(":", 1)[1].strip()
                break
            acknowledged.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert window is not None, "the writer ended before its write window"
        assert Path(window).parent == data_dir / "jobs" and Path(window).exists()  # killed with it open
        jobs = load_jobs(data_dir)
        missing = [job_id for job_id in acknowledged if job_id not in jobs]
        assert missing == [], f"round {round_number}: lost {len(missing)} of {len(acknowledged)} acknowledged jobs"
        assert not list((data_dir / "jobs").glob("*.corrupt-*"))
    assert len(acknowledged) == 2 * (pause_at - 1) + 1


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


CLI_AT_A_BARRIER = WRITE_OPENS + textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    folder, parties, window, argv = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]

    def meet(name, timeout, since_first):
        # wait until every party has reached this point, or until `timeout` seconds after
        # the first one did (since_first) or after this one did
        here = folder / name
        here.mkdir(exist_ok=True)
        (here / str(os.getpid())).touch()
        start = time.time()
        while len(arrived := list(here.iterdir())) < parties:
            since = min(p.stat().st_mtime for p in arrived) if since_first else start
            if time.time() - since > timeout:
                return
            time.sleep(0.01)

    def at_first_write(n, path):
        # CLIs that do not take turns all get here with the empty table they loaded, and
        # then write over each other; a CLI that holds the lock waits `window` s in vain
        if n == 1:
            meet("writing", window, since_first=True)

    write_opens(os.path.join(os.environ["DATA_DIR"], "jobs"), at_first_write)

    from services.pipeline.cli_entry import main

    meet("started", 30.0, since_first=False)  # imports done: all four begin the command together
    sys.exit(main(argv))
    """
)


def test_four_cli_processes_without_a_daemon_take_turns(data_dir: Path, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLI_AT_A_BARRIER, str(barrier), "4", "1.0",
             "add-job", "--kind", "log", "--account", "a", "--content", f"job {n}"],
            env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(4)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    assert len(list((barrier / "started").iterdir())) == 4  # all four began together
    assert len(list((barrier / "writing").iterdir())) == 4  # and each one reached its write
    assert len(set(ids)) == 4
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
        try:
            # held across the daemon's first attempt, and a while after it
            waiting = started.wait_for_log("data dir is locked by a command; waiting for it")
            assert (waiting["holder"]["role"], waiting["holder"]["pid"]) == ("cli", os.getpid())
            time.sleep(0.5)
            assert started.proc.poll() is None, started.terminate()  # still waiting, not refused
        except BaseException:
            started.proc.kill()
            raise
    try:
        started.wait_ready()
    finally:
        code, _, err = started.terminate()
    assert code == 0, err
