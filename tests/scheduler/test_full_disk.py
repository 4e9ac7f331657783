"""A data dir on a full (or read-only) disk, a small tmpfs mounted for the test.

Reading needs no space: ``list``, ``show`` and ``quota`` work on a full disk, with or
without a daemon. A refused write is one line naming the disk, and changes nothing. A
daemon that cannot write keeps running, refuses changes, and resumes once space is freed;
a daemon that cannot start says why in one line. Nothing acknowledged is lost, no file is
left truncated.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_processes import CLI, Daemon, cli, env_for, load_jobs


def _mount(point: Path, *options: str) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"these tests mount a tmpfs (they run as root, as CI does): {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own."""
    point = tmp_path / "disk"
    point.mkdir()
    _mount(point, "size=2m", "mode=0755")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; return the filler file (delete it to free space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass
    return filler


def snapshot(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in (data_dir / "jobs").rglob("*") if p.is_file()}


def assert_whole(data_dir: Path) -> None:
    """Every day file parses; no temp file is left behind."""
    for path in (data_dir / "jobs").iterdir():
        assert not path.name.endswith(".tmp"), path
        if path.name.startswith("jobs_"):
            json.loads(path.read_bytes())


def add(data_dir: Path, content: str) -> subprocess.CompletedProcess[str]:
    return cli(data_dir, "add-job", "--kind", "log", "--account", "a", "--content", content, "--at", "2026-12-30T08:00")


def test_reads_work_and_writes_are_refused_on_a_full_disk_without_a_daemon(disk: Path) -> None:
    data_dir = disk / "data"
    ids = [add(data_dir, f"job {n}").stdout.strip() for n in range(3)]
    filler = fill(disk)
    before = snapshot(data_dir)
    listed = cli(data_dir, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {j["job_id"] for j in json.loads(listed.stdout)} == set(ids)
    shown = cli(data_dir, "show", ids[0])
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    quota = cli(data_dir, "quota", "--json")
    assert quota.returncode == 0 and json.loads(quota.stdout)["used"] == 0, quota.stderr
    refused = add(data_dir, "one too many")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"error: no space left on the disk mounted at {disk}: cannot write job files in {data_dir / 'jobs'}; "
        "free some space; the job was not added; nothing was changed\n"
    )
    removed = cli(data_dir, "remove", ids[1])
    assert removed.returncode == 1 and removed.stderr.count("\n") == 1 and "no space left" in removed.stderr
    assert snapshot(data_dir) == before
    assert_whole(data_dir)
    filler.unlink()
    assert add(data_dir, "after").returncode == 0
    assert set(ids) < set(load_jobs(data_dir))


def test_a_daemon_on_a_full_disk_serves_reads_refuses_changes_and_resumes(disk: Path) -> None:
    data_dir = disk / "data"
    ids = [add(data_dir, f"job {n}").stdout.strip() for n in range(3)]
    daemon = Daemon(data_dir)
    try:
        daemon.wait_ready()
        acknowledged = [add(data_dir, "while running").stdout.strip()]
        filler = fill(disk)
        listed = cli(data_dir, "list", "--json")
        assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 4, listed.stderr
        assert cli(data_dir, "show", ids[0]).returncode == 0
        assert cli(data_dir, "quota").returncode == 0
        refused = add(data_dir, "refused")
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"error: no space left on the disk mounted at {disk}")
        assert refused.stderr.rstrip().endswith("the job was not added; nothing was changed")
        assert daemon.proc.poll() is None  # still running
        health = json.loads(subprocess.run(
            ["python3", "-c", "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1]).read().decode())",
             f"http://127.0.0.1:{daemon.wait_ready()['api_port']}/health"], capture_output=True, text=True).stdout)
        assert health["status"] == "degraded" and health["storage"].startswith("cannot write")
        filler.unlink()
        deadline = time.monotonic() + 30
        while (again := add(data_dir, "after space was freed")).returncode != 0:
            assert time.monotonic() < deadline, again.stderr
            time.sleep(0.2)
        acknowledged.append(again.stdout.strip())
    finally:
        code, out, err = daemon.terminate()
    assert code == 0, err
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(e["msg"].startswith("cannot write the data dir; starting no job") for e in logs)
    assert any(e["msg"] == "the data dir takes writes again; resuming" for e in logs)
    jobs = load_jobs(data_dir)
    assert set(ids + acknowledged) <= set(jobs) and "refused" not in {j.content for j in jobs.values()}
    assert_whole(data_dir)


def test_a_daemon_starts_on_a_full_disk_and_one_that_cannot_says_why(disk: Path) -> None:
    data_dir = disk / "data"
    ids = [add(data_dir, f"job {n}").stdout.strip() for n in range(2)]
    daemon = Daemon(data_dir)  # first start: token file made
    daemon.wait_ready()
    assert daemon.terminate()[0] == 0
    filler = fill(disk)
    daemon = Daemon(data_dir)
    try:
        daemon.wait_ready()
        listed = cli(data_dir, "list", "--json")
        assert listed.returncode == 0 and {j["job_id"] for j in json.loads(listed.stdout)} == set(ids)
    finally:
        assert daemon.terminate()[0] == 0
    # a data dir never used has no lock file or token yet: nothing can be made on a full disk
    started = subprocess.run([*CLI, "run"], env=env_for(disk / "fresh"), capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 1
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("error: no space left on the disk mounted at")
    filler.unlink()
    assert_whole(data_dir)


def test_a_read_only_jobs_dir_refuses_in_one_line_without_an_undo_warning(disk: Path) -> None:
    data_dir = disk / "data"
    job_id = add(data_dir, "kept").stdout.strip()
    jobs = data_dir / "jobs"
    subprocess.run(["mount", "--bind", str(jobs), str(jobs)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(jobs)], check=True)
        before = snapshot(data_dir)
        refused = add(data_dir, "refused")
        removed = cli(data_dir, "remove", job_id)
        listed = cli(data_dir, "list")
        assert snapshot(data_dir) == before
    finally:
        subprocess.run(["umount", str(jobs)], check=True)
    for done, outcome in ((refused, "the job was not added"), (removed, "the job was not removed")):
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr == (
            f"error: cannot write job files in {jobs}: Read-only file system; {outcome}; nothing was changed\n"
        )
    assert listed.returncode == 0 and job_id in listed.stdout
    assert set(load_jobs(data_dir)) == {job_id}


def test_reads_work_on_a_read_only_data_dir(disk: Path) -> None:
    data_dir = disk / "data"
    job_id = add(data_dir, "kept").stdout.strip()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        listed = cli(data_dir, "list", "--json")
        shown = cli(data_dir, "show", job_id)
        refused = add(data_dir, "refused")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert listed.returncode == 0 and [j["job_id"] for j in json.loads(listed.stdout)] == [job_id], listed.stderr
    assert shown.returncode == 0, shown.stderr
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "Read-only file system" in refused.stderr
