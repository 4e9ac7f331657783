"""The audit trail: a line per job or schedule change, in order, fsynced before ``flush``
returns, in the zone's day file, without secrets, and a failing disk that is retried
without ever raising into the loop."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.scheduler import audit as audit_module
from services.scheduler.actor import acting_as
from services.scheduler.audit import AuditLog, read_audit
from services.scheduler.clock import load_timezone
from services.scheduler.errors import DiskFullError, JobValidationError, StorageError
from services.scheduler.handlers import HandlerRegistry
from services.scheduler.models import ScheduledJob
from services.scheduler.new_job import NewJob
from services.scheduler.scheduler import Scheduler

VIETNAM = load_timezone("Asia/Ho_Chi_Minh")
SECRET = "tVPZNGuSZ2DFJfH5ZcWRXVG5QgiQyXGtT"  # the shape of a worker's task token


async def ok(job: ScheduledJob) -> dict:
    return {"echo": job.content}


async def boom(job: ScheduledJob) -> dict:
    raise RuntimeError("renderer exploded")


@pytest.fixture
def registry() -> HandlerRegistry:
    made = HandlerRegistry()
    made.register("log", ok)
    made.register("ok", ok)
    made.register("boom", boom)
    return made


@pytest.fixture
def make_audit(data_dir: Path, clock):
    made: list[AuditLog] = []

    def factory(zone=VIETNAM, **kwargs) -> AuditLog:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("retry_seconds", 0.01)
        kwargs.setdefault("stop_timeout_seconds", 2.0)
        log = AuditLog(kwargs.pop("data_dir", data_dir), zone, **kwargs)
        made.append(log)
        return log

    yield factory
    for log in made:
        log.close(timeout=2.0)


def audited_scheduler(data_dir: Path, registry: HandlerRegistry, clock, audit: AuditLog) -> Scheduler:
    """A Scheduler with ``audit`` (this test's, with short retries) wired as its docstring says."""
    scheduler = Scheduler(data_dir, registry=registry, clock=clock)
    for wired in [c for c in scheduler.companions if isinstance(c, AuditLog)]:  # the Scheduler's own
        wired.detach(scheduler.manager)
        scheduler.companions.remove(wired)
    audit.attach(scheduler.manager)
    scheduler.companions.append(audit)
    scheduler.load()
    return scheduler


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def within(step, seconds: float = 5.0):
    """Await ``step`` (a flush): a broken writer fails the test instead of hanging it."""
    return await asyncio.wait_for(step, timeout=seconds)


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


# -- the job table, through a real Scheduler --------------------------------------------------


async def test_a_job_added_run_failed_retried_and_removed_leaves_one_line_per_change(
    data_dir: Path, registry, clock, make_audit
) -> None:
    audit = make_audit()
    scheduler = audited_scheduler(data_dir, registry, clock, audit)
    added_at = clock.now
    with acting_as("alice"):
        await scheduler.add_job_async("acc", "Xin chào", kind="ok", job_id="job-ok")
        await scheduler.add_job_async("acc", "x", kind="boom", max_retries=1, job_id="job-bad")
    clock.advance(seconds=1)
    run_at = clock.now
    await scheduler.run_once()  # job-ok: RUNNING, COMPLETED; job-bad: RUNNING, back to SCHEDULED
    clock.advance(minutes=2)
    retry_at = clock.now
    await scheduler.executor.run_job(scheduler.get_job("job-bad"))  # the retry: RUNNING, FAILED
    clock.advance(seconds=1)
    with acting_as("alice"):
        await scheduler.remove_job_async("job-ok")
    await within(audit.flush())

    path = data_dir / "audit" / "audit_2026-11-23.jsonl"  # 12:00 UTC is 19:00 in Vietnam
    assert [p.name for p in (data_dir / "audit").iterdir()] == [path.name]
    every = lines_of(path)
    assert all(set(line) == {"v", "at", "actor", "action", "target", "id", "before", "after", "changed"}
               and line["v"] == 1 and line["target"] == "job" for line in every)
    ok_lines = [line for line in every if line["id"] == "job-ok"]
    assert [(line["action"], line["actor"]) for line in ok_lines] == [
        ("job.add", "alice"), ("job.update", "scheduler"), ("job.update", "scheduler"), ("job.remove", "alice"),
    ]
    add, running, completed, removed = ok_lines
    assert add["at"] == added_at.isoformat().replace("+00:00", "Z") == "2026-11-23T12:00:00Z"
    assert add["before"] is None and add["after"]["content"] == "Xin chào" and add["after"]["status"] == "scheduled"
    assert add["changed"] == list(add["after"])  # the whole record
    assert running["changed"] == ["status", "updated_at", "started_at"]  # the changed fields only
    assert running["before"] == {"status": "scheduled", "updated_at": "2026-11-23T12:00:00Z", "started_at": None}
    assert running["after"] == {"status": "running", "updated_at": "2026-11-23T12:00:01Z",
                                "started_at": "2026-11-23T12:00:01Z"}
    assert running["at"] == run_at.isoformat().replace("+00:00", "Z")
    assert completed["changed"] == ["status", "completed_at", "result"]  # the same instant: updated_at is too
    assert (completed["before"]["status"], completed["after"]["status"]) == ("running", "completed")
    assert completed["after"]["result"] == {"echo": "Xin chào"}
    assert removed["after"] is None and removed["before"]["status"] == "completed"

    bad_lines = [line for line in every if line["id"] == "job-bad"]
    statuses = [(line["before"] or {}).get("status") for line in bad_lines[1:]] + [bad_lines[-1]["after"]["status"]]
    assert statuses == ["scheduled", "running", "scheduled", "running", "failed"]
    retry = bad_lines[2]
    assert set(retry["changed"]) == {"status", "scheduled_time", "retry_count", "error"}
    assert retry["after"]["retry_count"] == 1 and retry["after"]["error"] == "RuntimeError: renderer exploded"
    assert retry["after"]["scheduled_time"] == (run_at + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    assert bad_lines[3]["at"] == retry_at.isoformat().replace("+00:00", "Z")
    assert all(line["actor"] == "scheduler" for line in bad_lines[1:])

    newest = read_audit(data_dir, target_id="job-ok")
    assert newest == list(reversed(ok_lines))


async def test_the_day_file_is_the_local_date_in_the_configured_zone(data_dir: Path, tmp_path: Path, clock,
                                                                     make_audit) -> None:
    clock.now = datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc)  # 06:30 on the 24th in Vietnam
    vietnam, utc = make_audit(), make_audit(zone=timezone.utc, data_dir=tmp_path / "utc")
    for log in (vietnam, utc):
        await within(log.record_async("schedule.create", "s1", after={"name": "daily"}))
    assert os.listdir(data_dir / "audit") == ["audit_2026-11-24.jsonl"]
    assert os.listdir(tmp_path / "utc" / "audit") == ["audit_2026-11-23.jsonl"]
    assert read_audit(data_dir, "2026-11-24")[0]["at"] == "2026-11-23T23:30:00Z"
    assert read_audit(data_dir, "2026-11-23") == []


async def test_a_secret_in_a_job_record_never_reaches_the_file(data_dir: Path, registry, clock, make_audit) -> None:
    audit = make_audit()
    scheduler = audited_scheduler(data_dir, registry, clock, audit)
    checkpoint = {"outputs": {"StartRenderer": {"instance_id": "pid-1", "task_token": SECRET}}}
    with acting_as("alice"):
        job = await scheduler.manager.add_async(
            NewJob(account_id="acc", content="x", kind="ok"),
            extra={"token": "s3cr3t-value", "pipeline": checkpoint, "notes": "n" * 5000},
        )
    clock.advance(seconds=1)
    await scheduler.update_fields(job.job_id, {"token": "another-secret", "stage": "rendering"})
    await within(audit.flush())

    raw = (data_dir / "audit" / "audit_2026-11-23.jsonl").read_text(encoding="utf-8")
    for secret in ("s3cr3t-value", "another-secret", SECRET):
        assert secret not in raw
    add, update = lines_of(data_dir / "audit" / "audit_2026-11-23.jsonl")
    assert add["after"]["token"] == "[redacted]"
    assert add["after"]["pipeline"]["outputs"]["StartRenderer"] == {"instance_id": "pid-1", "task_token": "[redacted]"}
    assert add["after"]["notes"] == "n" * 2000 + "…[3000 more characters]"
    assert update["changed"] == ["updated_at", "token", "stage"]
    assert update["before"] == {"updated_at": "2026-11-23T12:00:00Z", "token": "[redacted]"}
    assert update["after"]["token"] == "[redacted]" and update["after"]["stage"] == "rendering"


async def test_a_schedule_change_keeps_only_the_changed_fields_and_hides_its_secrets(data_dir: Path,
                                                                                     make_audit) -> None:
    audit = make_audit()
    webhook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    old = {"name": "daily", "status": "active", "api_key": "sk-live-1", "notify": {"webhook_url": webhook}}
    with acting_as("cli:bob"):
        await within(audit.record_async("schedule.create", "s1", after=old))
        await within(audit.record_async("schedule.pause", "s1", before=old, after={**old, "status": "paused"}))
    audit.record("schedule.run", "s1", before=old, after=old, changed=["name"], actor="api:carol\x1b[31m")
    await within(audit.flush())
    raw = (data_dir / "audit" / "audit_2026-11-23.jsonl").read_text(encoding="utf-8")
    assert "sk-live-1" not in raw and "XXXXSECRET" not in raw
    create, pause, run = read_audit(data_dir)[::-1]
    assert create["after"] == {"name": "daily", "status": "active", "api_key": "[redacted]",
                               "notify": {"webhook_url": "[redacted]"}}
    assert (create["target"], create["actor"], create["before"]) == ("schedule", "cli:bob", None)
    assert pause == {**pause, "action": "schedule.pause", "changed": ["status"],
                     "before": {"status": "active"}, "after": {"status": "paused"}}
    assert (run["changed"], run["before"], run["actor"]) == (["name"], {"name": "daily"}, "api:carol__31m")


# -- durability and order -----------------------------------------------------------------------


async def test_flush_returns_only_after_the_lines_are_fsynced(data_dir: Path, make_audit, monkeypatch) -> None:
    audit = make_audit()
    real_fsync = os.fsync
    synced: list[tuple[str, int]] = []  # (path, its size when fsynced)

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append((fd_path(fd), os.fstat(fd).st_size))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    data_dir.mkdir(parents=True)
    path = data_dir.resolve() / "audit" / "audit_2026-11-23.jsonl"
    for count in (1, 2, 50):
        for i in range(count):
            audit.record("schedule.update", f"s{i}", before={"n": i}, after={"n": i + 1})
        await within(audit.flush())
        size = path.stat().st_size  # read at once: nothing is left for the writer to do
        assert (str(path), size) in synced, "flush returned before the file was fsynced"
    assert str(path.parent) in {name for name, _ in synced}  # the new file's folder entry too


async def test_a_slow_fsync_does_not_block_the_loop(data_dir: Path, make_audit, monkeypatch) -> None:
    audit = make_audit()
    real_fsync = os.fsync
    entered, release = threading.Event(), threading.Event()
    fsynced_on: list[threading.Thread] = []

    def slow_fsync(fd: int) -> None:
        if "/audit/audit_" in fd_path(fd):
            fsynced_on.append(threading.current_thread())
            entered.set()
            release.wait(timeout=2)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    audit.record("schedule.create", "s1", after={"name": "x"})  # returns while the fsync hangs
    assert await asyncio.to_thread(entered.wait, 2)
    flushing = asyncio.create_task(audit.flush())
    for _ in range(20):  # the loop keeps running other work meanwhile
        await asyncio.sleep(0)
    assert not flushing.done() and not release.is_set()
    release.set()
    await within(flushing)
    assert [line["id"] for line in read_audit(data_dir)] == ["s1"]
    assert fsynced_on and threading.current_thread() not in fsynced_on  # never on the loop's thread


async def test_an_own_flush_waits_for_its_task_lines_not_for_lines_queued_after_them(
    data_dir: Path, make_audit, monkeypatch
) -> None:
    """``flush(own=True)`` (what an API request awaits): its own line and those before it
    are fsynced; a line another task queued afterwards, held in the next batch, is not
    waited for. A plain ``flush`` waits for that one too."""
    audit = make_audit()
    real_fsync = os.fsync
    first_held, first_go = threading.Event(), threading.Event()
    second_held, second_go = threading.Event(), threading.Event()
    fsyncs = 0

    def hold_each_fsync(fd: int) -> None:
        nonlocal fsyncs
        if "/audit/audit_" in fd_path(fd):
            fsyncs += 1
            held, go = (first_held, first_go) if fsyncs == 1 else (second_held, second_go)
            held.set()
            go.wait(timeout=10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", hold_each_fsync)

    other_recorded = asyncio.Event()

    async def request() -> None:
        audit.record("schedule.trigger", "mine", after={"job_id": "j1"})
        await other_recorded.wait()  # as a trigger awaits its job's write, other lines are queued
        await audit.flush(own=True)

    mine = asyncio.create_task(request())  # a task of its own, as each HTTP request is
    assert await asyncio.to_thread(first_held.wait, 5)  # "mine" is in the first batch, being fsynced
    audit.record("job.update", "theirs", after={"status": "running"})  # this task's: the next batch
    other_recorded.set()
    everything = asyncio.create_task(audit.flush())
    first_go.set()
    assert await asyncio.to_thread(second_held.wait, 5)  # the second batch ("theirs") is held
    await within(mine)  # returned with its line on disk, "theirs" still held
    assert not everything.done()
    assert "mine" in {line["id"] for line in lines_of(data_dir / "audit" / "audit_2026-11-23.jsonl")}
    second_go.set()
    await within(everything)
    assert [line["id"] for line in read_audit(data_dir)] == ["theirs", "mine"]


async def test_lines_keep_the_order_recorded_across_batches_days_threads_and_a_failed_write(
    data_dir: Path, clock, make_audit, monkeypatch
) -> None:
    clock.now = datetime(2026, 11, 23, 16, 59, 59, tzinfo=timezone.utc)  # 23:59:59 in Vietnam
    audit = make_audit()
    real_write = os.write
    failed = threading.Event()

    def flaky_write(fd: int, data) -> int:
        # the first write into the second day's file fails half way: that batch must be
        # written again ahead of later ones, and the lines of the first day it held not twice
        if fd_path(fd).endswith("audit_2026-11-24.jsonl") and not failed.is_set():
            failed.set()
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", flaky_write)
    for i in range(3000):
        if i == 1500:
            clock.advance(seconds=2)  # the next Vietnam day: a new file from here on
        audit.record("schedule.update", "s", after={"i": i})
        if i % 97 == 0:
            await asyncio.sleep(0)  # let the writer take a batch now and then
    for _ in range(5):
        try:
            await within(audit.flush())
            break
        except StorageError:  # the failed attempt, when a flush was waiting for it
            continue
    assert failed.is_set() and audit.pending == 0
    first, second = (lines_of(data_dir / "audit" / f"audit_2026-11-{day}.jsonl") for day in (23, 24))
    assert [line["after"]["i"] for line in first + second] == list(range(3000))
    assert len(first) == 1500


async def test_lines_recorded_from_many_threads_are_written_in_the_order_they_were_recorded(
    data_dir: Path, make_audit
) -> None:
    audit = make_audit()
    order: list[tuple[int, int]] = []
    guard = threading.Lock()

    def worker(n: int) -> None:
        for i in range(500):
            with guard:  # the order in which record() is entered is the order lines must have
                audit.record("schedule.update", f"t{n}", after={"i": i})
                order.append((n, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    await within(audit.flush())
    written = [(int(line["id"][1:]), line["after"]["i"]) for line in reversed(read_audit(data_dir, limit=5000))]
    assert written == order and len(written) == 2000


# -- a failing disk ---------------------------------------------------------------------------------


def refuse_with_a_read_only_file_system(data_dir: Path, monkeypatch) -> None:
    real_open = os.open

    def read_only_open(path, flags, mode=0o777, *, dir_fd=None):
        if str(data_dir / "audit") in str(path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", read_only_open)


def refuse_with_a_file_where_the_folder_goes(data_dir: Path, monkeypatch) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "audit").write_text("in the way")


@pytest.mark.parametrize("refuse", [refuse_with_a_read_only_file_system, refuse_with_a_file_where_the_folder_goes],
                         ids=["read-only file system", "a file where the folder goes"])
async def test_a_refused_write_is_logged_once_retried_and_never_raises_into_the_loop(
    data_dir: Path, registry, clock, make_audit, monkeypatch, caplog, refuse
) -> None:
    audit = make_audit()
    scheduler = audited_scheduler(data_dir, registry, clock, audit)
    refuse(data_dir, monkeypatch)
    caplog.set_level(logging.WARNING, logger="services.scheduler.audit")
    ids = []
    for i in range(3):  # the job changes go on: the observer never raises
        ids.append((await scheduler.add_job_async("acc", f"x{i}", kind="ok", job_id=f"job-{i}")).job_id)
        with pytest.raises(StorageError, match="cannot write the audit trail in"):
            await within(audit.flush())  # each flush is one more attempt, and says it failed
    assert audit.pending == 3 and audit.write_failure
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].lines >= 1  # once for this kind of failure, not per line

    monkeypatch.undo()  # the disk takes writes again
    if (data_dir / "audit").is_file():
        (data_dir / "audit").unlink()
    await asyncio.wait_for(audit.flush(), timeout=5)
    written = lines_of(data_dir / "audit" / "audit_2026-11-23.jsonl")
    assert [(line["action"], line["id"]) for line in written] == [("job.add", job_id) for job_id in ids]
    assert audit.pending == 0 and audit.write_failure is None
    assert any(r.getMessage() == "audit trail writes resumed" for r in caplog.records)
    assert oct((data_dir / "audit").stat().st_mode & 0o777) == "0o700"
    assert oct((data_dir / "audit" / "audit_2026-11-23.jsonl").stat().st_mode & 0o777) == "0o600"


async def test_a_full_disk_leaves_no_half_line_and_says_which_disk(data_dir: Path, make_audit, monkeypatch) -> None:
    audit = make_audit()
    await within(audit.record_async("schedule.create", "s0", after={"n": 0}))
    real_write = os.write
    full = threading.Event()
    full.set()

    def full_disk_write(fd: int, data) -> int:
        if "/audit/audit_" in fd_path(fd) and full.is_set():
            real_write(fd, bytes(data[:10]))  # part of the line lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk_write)
    audit.record("schedule.update", "s1", before={"n": 0}, after={"n": 1})
    with pytest.raises(DiskFullError, match="^no space left on the disk mounted at .*: cannot write the audit trail"):
        await within(audit.flush())
    path = data_dir / "audit" / "audit_2026-11-23.jsonl"
    assert [line["id"] for line in lines_of(path)] == ["s0"]  # the half line was cut off again
    full.clear()  # space was freed
    await asyncio.wait_for(audit.flush(), timeout=5)
    assert [line["id"] for line in lines_of(path)] == ["s0", "s1"]


# -- the companion and the observer -------------------------------------------------------------------


async def test_stop_writes_what_is_queued_and_a_later_record_starts_the_writer_again(
    data_dir: Path, make_audit
) -> None:
    audit = make_audit()
    await audit.start()
    for i in range(100):
        audit.record("schedule.update", f"s{i}", after={"i": i})
    writer = audit._thread
    await audit.stop()
    assert audit.pending == 0 and len(read_audit(data_dir, limit=1000)) == 100
    assert writer is not None and not writer.is_alive()
    await within(audit.record_async("schedule.delete", "s1", before={"i": 1}))
    assert read_audit(data_dir, limit=1)[0]["action"] == "schedule.delete"


def test_the_observer_never_raises(make_audit, caplog) -> None:
    audit = make_audit()
    audit.observe(object(), None)  # not a record: logged, not raised
    audit.record("schedule.create", "s1", after=object.__new__(ScheduledJob))  # a broken model
    assert audit.pending == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "could not record a job change in the audit trail", "could not record a change in the audit trail",
    ]


# -- reading ---------------------------------------------------------------------------------------------


async def test_read_audit_is_newest_first_and_reads_only_the_days_it_needs(data_dir: Path, clock,
                                                                           make_audit) -> None:
    audit = make_audit()
    for day in range(3):
        for i in range(3):
            audit.record("schedule.update", f"s{i}", after={"day": day, "i": i})
        clock.advance(days=1)
    await within(audit.flush())
    folder = data_dir / "audit"
    newest = read_audit(data_dir, limit=4)
    assert [(e["after"]["day"], e["after"]["i"]) for e in newest] == [(2, 2), (2, 1), (2, 0), (1, 2)]
    assert [e["after"]["day"] for e in read_audit(data_dir, target_id="s1")] == [2, 1, 0]
    assert read_audit(data_dir, datetime(2026, 11, 24).date(), target_id="s0")[0]["after"] == {"day": 1, "i": 0}
    # the oldest day cannot be read any more: a read that stops before it does not notice
    (folder / "audit_2026-11-23.jsonl").unlink()
    (folder / "audit_2026-11-23.jsonl").mkdir()
    assert len(read_audit(data_dir, limit=6)) == 6
    with pytest.raises(IsADirectoryError):
        read_audit(data_dir, limit=7)


def test_read_audit_skips_a_cut_line_and_refuses_bad_arguments(data_dir: Path, caplog) -> None:
    folder = data_dir / "audit"
    folder.mkdir(parents=True)
    good = json.dumps({"v": 1, "id": "a", "target": "job"})
    (folder / "audit_2026-11-23.jsonl").write_text(f"{good}\n{{\"v\": 1, \"id\n{good}\n{{\"v\": 1, \"i")
    assert [e["id"] for e in read_audit(data_dir)] == ["a", "a"]
    assert [r.line for r in caplog.records] == [2]  # the line still being written is not reported
    assert read_audit(data_dir / "nowhere") == [] and read_audit(data_dir, target="schedule") == []
    with pytest.raises(JobValidationError, match="^day: must be a date like 2026-11-24, got 'monday'$"):
        read_audit(data_dir, "monday")
    with pytest.raises(JobValidationError, match="^limit: must be a positive integer$"):
        read_audit(data_dir, limit=0)


def test_the_module_names_its_public_api() -> None:
    assert audit_module.__all__ == ["AUDIT_FORMAT_VERSION", "AuditLog", "read_audit"]
