"""JobStorage: the file format, the day of a job, partial rewrites, duplicates, bad files."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.scheduler import storage as storage_module
from services.scheduler.clock import load_timezone
from services.scheduler.errors import StorageError
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.storage import JobStorage

VN = load_timezone("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # 19:00 in Vietnam


def make(job_id: str, when: datetime = T0, **fields) -> ScheduledJob:
    fields.setdefault("content", "Chương một: Xin chào")
    return ScheduledJob(job_id=job_id, account_id="acc", scheduled_time=when, **fields)


def storage(data_dir: Path) -> JobStorage:
    return JobStorage(data_dir, VN)


def files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "jobs").glob("jobs_*.json"))


def test_file_format_is_versioned_pretty_and_readable(data_dir: Path) -> None:
    store = storage(data_dir)
    store.put(make("j1"))
    store.flush()
    path = data_dir / "jobs" / "jobs_2026-11-23.json"
    text = path.read_text(encoding="utf-8")
    assert "Chương một: Xin chào" in text  # not \u-escaped
    assert text.startswith('{\n  "version": 1,\n  "date": "2026-11-23",\n  "jobs": {\n')
    body = json.loads(text)
    assert body["version"] == 1 and body["date"] == "2026-11-23"
    assert body["jobs"]["j1"]["status"] == "scheduled"
    assert body["jobs"]["j1"]["scheduled_time"] == "2026-11-23T12:00:00Z"


@pytest.mark.parametrize(
    ("utc_time", "day"),
    [
        (datetime(2026, 11, 23, 16, 59, 59, tzinfo=timezone.utc), "2026-11-23"),
        (datetime(2026, 11, 23, 17, 0, 0, tzinfo=timezone.utc), "2026-11-24"),
    ],
    ids=["16:59:59Z", "17:00:00Z"],
)
def test_day_file_follows_the_vietnam_midnight(data_dir: Path, utc_time: datetime, day: str) -> None:
    store = storage(data_dir)
    store.put(make("j", utc_time))
    store.flush()
    assert files(data_dir) == [f"jobs_{day}.json"]


def test_timezone_is_configurable(data_dir: Path) -> None:
    store = JobStorage(data_dir, load_timezone("UTC"))
    store.put(make("j", datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)))
    store.flush()
    assert files(data_dir) == ["jobs_2026-11-23.json"]


def test_job_moves_to_the_day_it_completes(data_dir: Path) -> None:
    store = storage(data_dir)
    job = make("j", datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc))  # 23:00 on the 23rd
    store.put(job)
    store.flush()
    done = job.model_copy(
        update={"status": JobStatus.COMPLETED, "completed_at": datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc)}
    )
    store.put(done)
    store.flush()
    assert files(data_dir) == ["jobs_2026-11-24.json"]  # the 23rd was left empty: removed
    reloaded = storage(data_dir).load()
    assert reloaded["j"].status is JobStatus.COMPLETED


def test_only_changed_days_are_rewritten(data_dir: Path) -> None:
    store = storage(data_dir)
    for i in range(5):
        store.put(make(f"j{i}", T0 + timedelta(days=i)))
    assert store.flush() == 5
    before = {p.name: p.stat().st_mtime_ns for p in (data_dir / "jobs").glob("*.json")}
    store.put(make("new", T0 + timedelta(days=2)))
    assert store.pending_days == {date(2026, 11, 25)}
    assert store.flush() == 1
    after = {p.name: p.stat().st_mtime_ns for p in (data_dir / "jobs").glob("*.json")}
    changed = [name for name in after if after[name] != before[name]]
    assert changed == ["jobs_2026-11-25.json"]
    assert store.flush() == 0


def test_file_lists_jobs_by_time_after_any_change(data_dir: Path) -> None:
    store = storage(data_dir)
    for n in range(4):
        store.put(make(f"j{n}", T0 + timedelta(minutes=n)))
    store.flush()
    store.put(make("j0", T0 + timedelta(minutes=10)))  # a retry moved it later the same day
    store.delete("j2")
    store.put(make("j9", T0 - timedelta(minutes=1)))
    store.put(make("j3", T0 + timedelta(minutes=3), content="edited, same time"))
    store.flush()
    day_file = json.loads((data_dir / "jobs" / "jobs_2026-11-23.json").read_text())
    assert list(day_file["jobs"]) == ["j9", "j1", "j3", "j0"]
    assert day_file["jobs"]["j3"]["content"] == "edited, same time"


def test_file_order_stays_right_through_random_adds_moves_and_deletes(data_dir: Path) -> None:
    """The cached order is kept by insertion, not re-sorted: check it against a sort."""
    import random

    rng = random.Random(3)
    store = storage(data_dir)
    for step in range(400):
        job_id = f"j{rng.randrange(60)}"
        if rng.random() < 0.15:
            store.delete(job_id)
        else:
            store.put(make(job_id, T0 + timedelta(hours=rng.randrange(-30, 30), minutes=rng.randrange(60))))
        if step % 25 == 0:
            store.flush()
    store.flush()
    for path in (data_dir / "jobs").glob("jobs_*.json"):
        jobs = json.loads(path.read_text())["jobs"]
        keys = [(record["scheduled_time"], job_id) for job_id, record in jobs.items()]
        assert keys == sorted(keys), path.name
    assert set(storage(data_dir).load()) == set(store.jobs)


def test_kept_entries_write_what_a_fresh_encode_writes_through_random_changes(data_dir: Path, tmp_path: Path) -> None:
    """The entries kept per day (day_order.py) never write a stale job: after each flush,
    every day file is byte for byte what a storage encoding every job afresh writes."""
    import random

    rng = random.Random(11)
    store = storage(data_dir)
    statuses = [JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.FAILED]
    for step in range(300):
        job_id = f"j{rng.randrange(40)}"
        current = store.jobs.get(job_id)
        roll = rng.random()
        if roll < 0.1:
            store.delete(job_id)
        elif current is not None and roll < 0.6:  # same time, new status or text: a touch
            store.put(current.model_copy(update={"status": rng.choice(statuses), "content": f"bước {step}"}))
        else:
            store.put(make(job_id, T0 + timedelta(hours=rng.randrange(-30, 30), minutes=rng.randrange(60))))
        if step % 7 == 0:
            store.flush()
            fresh = JobStorage(tmp_path / f"fresh{step}", VN)
            for job in store.jobs.values():
                fresh.put(job)
            fresh.flush()
            assert files(data_dir) == files(tmp_path / f"fresh{step}"), step
            for name in files(data_dir):
                ours = (data_dir / "jobs" / name).read_bytes()
                assert ours == (tmp_path / f"fresh{step}" / "jobs" / name).read_bytes(), (step, name)


def test_delete_removes_an_emptied_day_file(data_dir: Path) -> None:
    store = storage(data_dir)
    store.put(make("a"))
    store.put(make("b", T0 + timedelta(days=1)))
    store.flush()
    store.delete("a")
    store.flush()
    assert files(data_dir) == ["jobs_2026-11-24.json"]


def test_load_round_trips_every_job(data_dir: Path) -> None:
    store = storage(data_dir)
    originals = [make(f"j{i}", T0 + timedelta(hours=7 * i), priority=1 + i % 4) for i in range(40)]
    for job in originals:
        store.put(job)
    store.flush()
    loaded = storage(data_dir).load()
    assert loaded == {job.job_id: job for job in originals}


def write_day(data_dir: Path, day: str, jobs: dict) -> Path:
    folder = data_dir / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"jobs_{day}.json"
    path.write_text(json.dumps({"version": 1, "date": day, "jobs": jobs}, ensure_ascii=False), encoding="utf-8")
    return path


def test_duplicate_resolves_to_newest_updated_at_and_is_tidied(data_dir: Path) -> None:
    old = make("dup", updated_at=T0).to_dict()
    new = make("dup", updated_at=T0 + timedelta(minutes=5), content="mới hơn").to_dict()
    write_day(data_dir, "2026-11-23", {"dup": new})
    write_day(data_dir, "2026-11-22", {"dup": old})
    store = storage(data_dir)
    jobs = store.load()
    assert jobs["dup"].content == "mới hơn"
    store.flush()
    assert files(data_dir) == ["jobs_2026-11-23.json"]
    # the same result whichever file is read first
    write_day(data_dir, "2026-11-24", {"dup": old})
    assert storage(data_dir).load()["dup"].content == "mới hơn"


def test_corrupt_file_is_quarantined_and_the_others_load(data_dir: Path, caplog) -> None:
    write_day(data_dir, "2026-11-23", {"ok": make("ok").to_dict()})
    bad = data_dir / "jobs" / "jobs_2026-11-24.json"
    bad.write_text('{"version": 1, "jobs": {"x": ', encoding="utf-8")
    jobs = storage(data_dir).load()
    assert list(jobs) == ["ok"]
    assert not bad.exists()
    moved = list((data_dir / "jobs").glob("jobs_2026-11-24.json.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_text() == '{"version": 1, "jobs": {"x": '
    assert any(r.levelname == "ERROR" and "corrupt" in r.getMessage() for r in caplog.records)


def test_file_without_jobs_object_is_quarantined(data_dir: Path) -> None:
    (data_dir / "jobs").mkdir(parents=True)
    (data_dir / "jobs" / "jobs_2026-11-23.json").write_text("[1, 2]")
    assert storage(data_dir).load() == {}
    assert list((data_dir / "jobs").glob("*.corrupt-*"))


def test_invalid_record_is_skipped_copied_and_kept_on_rewrite(data_dir: Path, caplog) -> None:
    bad_record = {"job_id": "bad", "account_id": "acc", "content": "x" * 600, "scheduled_time": "2026-11-23T12:00:00Z"}
    write_day(data_dir, "2026-11-23", {"good": make("good").to_dict(), "bad": bad_record})
    store = storage(data_dir)
    jobs = store.load()
    assert list(jobs) == ["good"]
    assert any("invalid job record" in r.getMessage() for r in caplog.records)
    copies = list((data_dir / "jobs" / "rejected").glob("*.json"))
    assert len(copies) == 1
    copy = json.loads(copies[0].read_text(encoding="utf-8"))
    assert copy["record"] == bad_record and "at most 500" in copy["reason"]
    # rewriting that day keeps the rejected record verbatim
    store.put(make("another"))
    store.flush()
    body = json.loads((data_dir / "jobs" / "jobs_2026-11-23.json").read_text(encoding="utf-8"))
    assert body["jobs"]["bad"] == bad_record
    assert set(body["jobs"]) == {"good", "another", "bad"}
    # even if every valid job leaves the day, the file stays for the rejected record
    store.delete("good")
    store.delete("another")
    store.flush()
    body = json.loads((data_dir / "jobs" / "jobs_2026-11-23.json").read_text(encoding="utf-8"))
    assert body["jobs"] == {"bad": bad_record}


def test_record_whose_key_differs_from_its_job_id_is_rejected(data_dir: Path) -> None:
    write_day(data_dir, "2026-11-23", {"k": make("other").to_dict()})
    assert storage(data_dir).load() == {}
    assert list((data_dir / "jobs" / "rejected").glob("*.json"))


def test_record_without_job_id_takes_its_key(data_dir: Path) -> None:
    record = make("x").to_dict()
    del record["job_id"]
    write_day(data_dir, "2026-11-23", {"from-key": record})
    assert list(storage(data_dir).load()) == ["from-key"]


def test_newer_format_version_refuses_to_load(data_dir: Path) -> None:
    path = write_day(data_dir, "2026-11-23", {})
    path.write_text(json.dumps({"version": 2, "date": "2026-11-23", "jobs": {}}))
    with pytest.raises(StorageError, match="format version 2"):
        storage(data_dir).load()


def test_every_loaded_instant_is_in_the_one_shared_utc(data_dir: Path) -> None:
    # the bulk load converts the instants itself (models.BULK_LOAD): every datetime field
    # of a job, written with an offset, must come back as the same instant in timezone.utc
    full = make("j", status=JobStatus.COMPLETED, started_at=T0, completed_at=T0)
    instants = [name for name, value in full.__dict__.items() if isinstance(value, datetime)]
    assert len(instants) == 5
    record = full.to_dict()
    plus7 = timezone(timedelta(hours=7))
    for offset, name in enumerate(instants):
        record[name] = (T0 + timedelta(minutes=offset)).astimezone(plus7).isoformat()
    write_day(data_dir, "2026-11-23", {"j": record})
    job = storage(data_dir).load()["j"]
    for offset, name in enumerate(instants):
        value = getattr(job, name)
        assert value.tzinfo is timezone.utc, name
        assert value == T0 + timedelta(minutes=offset), name


@pytest.mark.parametrize("newest_in", ["2026-11-22", "2026-11-23", "2026-11-24"])
def test_a_job_in_three_files_keeps_the_newest_copy_wherever_it_is(data_dir: Path, newest_in: str) -> None:
    days = ["2026-11-22", "2026-11-23", "2026-11-24"]
    older = [day for day in days if day != newest_in]
    for minutes, day in enumerate(older):
        write_day(data_dir, day, {"dup": make("dup", updated_at=T0 + timedelta(minutes=minutes), content="cũ").to_dict()})
    newest = make("dup", updated_at=T0 + timedelta(hours=1), content="mới nhất").to_dict()
    write_day(data_dir, newest_in, {"dup": newest, "other": make("other", T0 + timedelta(days=1)).to_dict()})
    store = storage(data_dir)
    jobs = store.load()
    assert jobs["dup"].content == "mới nhất"
    assert set(jobs) == {"dup", "other"}
    store.flush()  # the two stale copies leave their files; the newest lands in its own day
    assert files(data_dir) == ["jobs_2026-11-23.json", "jobs_2026-11-24.json"]
    again = storage(data_dir).load()
    assert again["dup"].content == "mới nhất" and set(again) == {"dup", "other"}


@pytest.mark.parametrize("flush", ["sync", "async"])
def test_misplaced_job_moves_to_its_day_on_next_flush(data_dir: Path, flush: str) -> None:
    write_day(data_dir, "2026-11-20", {"j": make("j").to_dict()})
    store = storage(data_dir)
    store.load()
    if flush == "sync":
        store.flush()
    else:  # the daemon's: the tidy-up counts as a change, so the group commit writes it
        import asyncio

        asyncio.run(store.flush_async())
    assert files(data_dir) == ["jobs_2026-11-23.json"]


@pytest.mark.parametrize(
    ("file_day", "utc_time", "home"),
    [
        ("2026-11-24", datetime(2026, 11, 23, 16, 59, 59, 999999, tzinfo=timezone.utc), "2026-11-23"),
        ("2026-11-24", datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc), "2026-11-24"),
        ("2026-11-24", datetime(2026, 11, 24, 16, 59, 59, 999999, tzinfo=timezone.utc), "2026-11-24"),
        ("2026-11-24", datetime(2026, 11, 24, 17, 0, tzinfo=timezone.utc), "2026-11-25"),
    ],
)
@pytest.mark.parametrize("day_bounds", ["known", "unknown"])
def test_load_places_a_job_by_its_instant_not_its_file(
    data_dir: Path, monkeypatch, file_day, utc_time, home, day_bounds
) -> None:
    if day_bounds == "unknown":  # a zone whose local midnight cannot be pinned down
        monkeypatch.setattr(storage_module, "local_day_bounds", lambda day, zone: None)
    write_day(data_dir, file_day, {"j": make("j", utc_time).to_dict()})
    store = storage(data_dir)
    store.load()
    store.flush()
    assert files(data_dir) == [f"jobs_{home}.json"]


def test_stale_temp_files_are_removed_on_load(data_dir: Path) -> None:
    write_day(data_dir, "2026-11-23", {"j": make("j").to_dict()})
    temp = data_dir / "jobs" / ".jobs_2026-11-23.json.123.tmp"
    temp.write_text("partial")
    storage(data_dir).load()
    assert not temp.exists()


def test_write_failure_raises_storage_error_and_keeps_days_dirty(data_dir: Path) -> None:
    store = storage(data_dir)
    store.put(make("j"))
    store.flush()
    # a directory where the temp file must go makes the write fail, even for root
    blocker = data_dir / "jobs" / f".jobs_2026-11-23.json.{os.getpid()}.tmp"
    blocker.mkdir()
    store.put(make("k"))
    with pytest.raises(StorageError, match="cannot write job files"):
        store.flush()
    assert store.pending_days == {date(2026, 11, 23)}
    blocker.rmdir()
    assert store.flush() == 1
    assert set(storage(data_dir).load()) == {"j", "k"}


def test_a_crash_between_the_two_writes_of_a_move_keeps_the_job(data_dir: Path, monkeypatch) -> None:
    store = storage(data_dir)
    job = make("mover", datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc))
    store.put(job)
    store.flush()
    done = job.model_copy(update={
        "status": JobStatus.COMPLETED,
        "completed_at": datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
        "updated_at": datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
    })
    store.put(done)
    real_put = storage_module._put_file
    calls = []

    def crash_in_phase_two(path, data):
        calls.append(path.name)
        if len(calls) > 2:  # phase 1 wrote both days; the process "dies" before phase 2
            raise OSError("simulated crash")
        return real_put(path, data)

    monkeypatch.setattr(storage_module, "_put_file", crash_in_phase_two)
    with pytest.raises(StorageError):
        store.flush()
    monkeypatch.undo()
    assert files(data_dir) == ["jobs_2026-11-23.json", "jobs_2026-11-24.json"]  # two copies, never none
    reloaded = storage(data_dir)
    assert reloaded.load()["mover"].status is JobStatus.COMPLETED
    reloaded.flush()
    assert files(data_dir) == ["jobs_2026-11-24.json"]
