"""Real processes, faults a new user meets: a closed or full stdout, ids in URLs, a frozen daemon.

- stdout closed before the command writes (the reader of ``| head`` has gone): the command
  ends quietly with 141, no traceback; stdout on /dev/full: one line, exit 1, and it says
  whether the change was made;
- with a daemon running, an id that is not a job id is refused (exit 2) before any request;
- a daemon stopped with SIGSTOP: add-job says the outcome is unknown and how to check; after
  SIGCONT the job exists once, and the same add-job sent again (its --job-id) adds nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from services.scheduler.clock import load_timezone
from services.scheduler.job_manager import JobManager
from services.scheduler.storage import JobStorage

from .test_processes import CLI, Daemon, cli, env_for, load_jobs


def run_with_closed_stdout(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*CLI, *args], env=env_for(data_dir, **extra), stdout=write_end, stderr=subprocess.PIPE,
            text=True, timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def many_jobs(data_dir: Path) -> list[str]:
    manager = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")))
    manager.load()
    return [manager.add_job("acc", f"Chương {i}: nội dung " + "x" * 60, kind="log").job_id for i in range(400)]


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("doctor", "--offline"), ("quota",), ("show", "{first}")],
    ids=["list", "list-json", "doctor", "quota", "show"],
)
def test_a_closed_stdout_ends_quietly(data_dir: Path, many_jobs: list[str], args: tuple[str, ...]) -> None:
    argv = [a.format(first=many_jobs[0]) for a in args]
    done = run_with_closed_stdout(data_dir, *argv)
    assert (done.returncode, done.stderr) == (141, ""), done.stderr[-2000:]


def test_list_piped_into_head_ends_quietly(data_dir: Path, many_jobs: list[str]) -> None:
    for command in (f"{CLI[0]} {CLI[1]} list | head -1", f"{CLI[0]} {CLI[1]} list --json | head -c 10"):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], env=env_for(data_dir), capture_output=True, text=True,
            timeout=120,
        )
        assert done.stderr == "" and done.returncode in (0, 141), (command, done.stderr[-2000:])
        assert done.stdout


def test_add_job_to_a_full_stdout_says_the_job_was_added(data_dir: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*CLI, "add-job", "--kind", "log", "--account", "a", "--content", "x"],
            env=env_for(data_dir), stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    assert done.returncode == 1
    (job_id,) = load_jobs(data_dir)
    assert done.stderr == (
        "error: cannot write the answer to stdout (No space left on device); "
        f"the job was added: {job_id} (see `show {job_id}`)\n"
    )
    with open("/dev/full", "w") as full:
        done = subprocess.run([*CLI, "list"], env=env_for(data_dir), stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        1, "error: cannot write the answer to stdout (No space left on device); nothing was changed\n"
    )


def test_ids_that_are_not_job_ids_never_reach_the_daemon(data_dir: Path) -> None:
    daemon = Daemon(data_dir)
    try:
        daemon.wait_ready()
        added = cli(data_dir, "add-job", "--kind", "log", "--account", "a", "--content", "x",
                    "--at", "2026-12-30T08:00")
        job_id = added.stdout.strip()
        for command, bad in (("remove", f"foo/../{job_id}"), ("show", f"{job_id}?x=1"), ("remove", f"{job_id}#")):
            done = cli(data_dir, command, bad)
            assert done.returncode == 2 and done.stderr.startswith("error: job_id: must be"), done.stderr
        assert cli(data_dir, "show", job_id).returncode == 0
    finally:
        code, _, err = daemon.terminate()
    assert code == 0, err
    assert job_id in load_jobs(data_dir)


def test_a_frozen_daemon_gives_an_unknown_outcome_and_a_safe_retry(data_dir: Path) -> None:
    daemon = Daemon(data_dir)
    stopped = False
    try:
        daemon.wait_ready()
        add = ["add-job", "--kind", "log", "--account", "a", "--content", "x", "--at", "2026-12-30T08:00"]
        pending = subprocess.Popen(
            [*CLI, *add], env=env_for(data_dir, API_TIMEOUT_SECONDS="1.5"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        stopped = True
        out, err = pending.communicate(timeout=60)
        if pending.returncode == 0:  # the daemon answered before it was stopped: try again frozen
            pending = subprocess.run([*CLI, *add], env=env_for(data_dir, API_TIMEOUT_SECONDS="1.5"),
                                     capture_output=True, text=True, timeout=60)
            out, err = pending.stdout, pending.stderr
        assert pending.returncode == 1 and out == ""
        assert err.startswith("error: the daemon did not answer within 1.5 s (is it stopped or overloaded?); "
                              "the outcome is unknown: check with `show "), err
        job_id = err.rsplit("`show ", 1)[1].split("`")[0]
        os.kill(daemon.proc.pid, signal.SIGCONT)
        stopped = False
        shown = cli(data_dir, "show", job_id, "--json")
        assert shown.returncode == 0, shown.stderr  # the daemon did make it
        again = cli(data_dir, *add, "--job-id", job_id)
        assert (again.returncode, again.stdout, again.stderr) == (0, f"{job_id}\n", "")
        listed = json.loads(cli(data_dir, "list", "--json").stdout)
        assert [j["job_id"] for j in listed].count(job_id) == 1
    finally:
        if stopped:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        code, _, err = daemon.terminate()
    assert code == 0, err

