"""The pipeline's commands do not destroy or duplicate: ``demo --dir`` empties only its own
folder; ``daily`` twice adds one run; accounts compare in NFC; an interrupted run is not
logged as a failure."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from services.pipeline.cli_entry import main
from services.pipeline.commands.demo import DEMO_MARKER, _take_demo_dir
from services.pipeline.jobs.daily_job import daily_job_id
from services.pipeline.settings import PipelineSettings, load_settings
from services.scheduler.lock import DataDirLock
from services.scheduler.scheduler import Scheduler

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_demo_refuses_a_data_dir_that_holds_jobs_and_notes(tmp_path: Path, capsys) -> None:
    data_dir = tmp_path / "x"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "add-job", "--kind", "log", "--account", "a", "--content", "mine")
    assert code == 0, err
    (data_dir / "my_notes.txt").write_text("notes\n")
    before = tree(data_dir)
    code, out, err = run(capsys, "demo", "--dir", str(data_dir))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: --dir {data_dir}: not a folder the demo made (it holds audit, jobs, my_notes.txt")
    assert err.count("\n") == 1
    assert tree(data_dir) == before


def test_demo_refuses_a_locked_folder_and_leaves_its_lock_and_token(tmp_path: Path, capsys) -> None:
    data_dir = tmp_path / "daemon-dir"
    data_dir.mkdir()
    (data_dir / "api_token").write_text("secret\n")
    (data_dir / DEMO_MARKER).write_text("even with the marker\n")
    with DataDirLock(data_dir, "daemon"):
        code, out, err = run(capsys, "demo", "--dir", str(data_dir))
    assert code == 2 and err == f"error: --dir {data_dir}: is in use by daemon pid {os.getpid()}; pick another folder\n"
    assert (data_dir / "api_token").read_text() == "secret\n" and (data_dir / "scheduler.lock").exists()


def test_demo_refuses_its_own_folder_once_it_holds_another_accounts_jobs(tmp_path: Path, capsys) -> None:
    data_dir = tmp_path / "demo"
    data_dir.mkdir()
    (data_dir / DEMO_MARKER).write_text("")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "add-job", "--kind", "log", "--account", "real", "--content", "x")
    assert code == 0, err
    code, _, err = run(capsys, "demo", "--dir", str(data_dir))
    assert code == 2 and "not a folder the demo made" in err


def test_demo_empties_a_folder_it_made_and_uses_a_new_or_empty_one(tmp_path: Path) -> None:
    made = tmp_path / "earlier-demo"
    (made / "jobs").mkdir(parents=True)
    (made / DEMO_MARKER).write_text("")
    (made / "jobs" / "jobs_2026-12-01.json").write_text(
        json.dumps({"version": 1, "date": "2026-12-01", "jobs": {"j1": {"account_id": "demo"}}})
    )
    (made / "published").mkdir()
    lock = _take_demo_dir(made)
    try:
        assert sorted(p.name for p in made.iterdir()) == sorted([DEMO_MARKER, "scheduler.lock"])
    finally:
        lock.release()
    for folder in (tmp_path / "new" / "nested", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        lock = _take_demo_dir(folder)
        lock.release()
        assert (folder / DEMO_MARKER).is_file()


def test_demo_settings_ignore_the_environment_and_leave_it_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UPLOAD_TARGET", "youtube")
    monkeypatch.setenv("TTS_ENGINE", "edge-tts")
    before = dict(os.environ)
    embedded = PipelineSettings.embedded()
    assert (embedded.upload_target, embedded.tts_engine, embedded.script_writer) == ("local", "local", "template")
    assert load_settings().upload_target == "youtube"  # the environment still says what it said
    assert dict(os.environ) == before


def test_daily_makes_one_schedule_and_updates_it(tmp_path: Path, capsys) -> None:
    data_dir = tmp_path / "data"
    first = run(capsys, "--data-dir", str(data_dir), "daily", "--at", "08:00", "--json")
    second = run(capsys, "--data-dir", str(data_dir), "daily", "--at", "08:00", "--json")
    assert first[0] == second[0] == 0, (first, second)
    made, again = json.loads(first[1]), json.loads(second[1])
    assert (made["outcome"], again["outcome"]) == ("created", "unchanged")
    assert made["schedule"]["schedule_id"] == again["schedule"]["schedule_id"]
    assert made["schedule"]["next_run_time"].endswith("+07:00") and "T08:00:00" in made["schedule"]["next_run_time"]
    moved = run(capsys, "--data-dir", str(data_dir), "daily", "--at", "09:30", "--json")
    assert json.loads(moved[1])["outcome"] == "updated"
    stored = json.loads((data_dir / "schedules.json").read_text(encoding="utf-8"))["schedules"]
    (schedule,) = stored.values()
    assert (schedule["name"], schedule["cron_expression"], schedule["timezone"]) == ("daily-default", "30 9 * * *", "Asia/Ho_Chi_Minh")
    assert not (data_dir / "jobs").exists() or not list((data_dir / "jobs").glob("*.json"))  # a schedule, no job yet
    assert run(capsys, "--data-dir", str(data_dir), "daily", "--at", "25:00")[0] == 2


def test_the_example_schedule_is_what_daily_makes() -> None:
    from datetime import time as dt_time

    from services.pipeline.jobs.daily_job import daily_schedule_spec

    example = json.loads((Path(__file__).parents[2] / "config" / "schedules.example").read_text(encoding="utf-8"))
    assert example["schedules"] == [daily_schedule_spec("default", dt_time(8, 0))]


async def test_an_old_daily_job_leaves_the_daily_schedule_once(tmp_path: Path) -> None:
    from datetime import time as dt_time

    from services.pipeline.extension import PipelineExtension
    from services.pipeline.jobs.daily_job import DAILY_KIND, DailyJobs, next_daily_time
    from tests.conftest import FakeClock

    clock = FakeClock(datetime(2026, 12, 1, 0, 30, tzinfo=timezone.utc))  # 07:30 in Vietnam
    scheduler = Scheduler(tmp_path / "data", extensions=[PipelineExtension()], clock=clock)
    scheduler.load()
    when = next_daily_time(dt_time(8, 0), clock())
    today = scheduler.add_job("kenh", "daily", when, kind=DAILY_KIND, job_id=daily_job_id("kenh", when))
    clock.advance(hours=1)
    runner = DailyJobs(scheduler, stages={})
    await runner._schedule_next(today)
    await runner._schedule_next(today)  # idempotent: still one schedule
    (schedule,) = scheduler.schedules.store.schedules.values()
    assert (schedule.name, schedule.cron_expression, schedule.account_id) == ("daily-kenh", "0 8 * * *", "kenh")
    next_fire = scheduler.schedules.next_run_time(schedule)
    assert next_fire == datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)  # tomorrow 08:00 in Vietnam
    assert [j.job_id for j in scheduler.list_jobs()] == [today.job_id]  # no self-re-added job


def test_an_account_typed_decomposed_finds_its_settings_table(settings_path: Path) -> None:
    settings_path.write_text('[accounts."kênh-một"]\ntts_voice = "vi-VN-NamMinhNeural"\n', encoding="utf-8")
    settings = load_settings()
    for typed in ("kênh-một", unicodedata.normalize("NFD", "kênh-một")):
        assert settings.for_account(typed).tts_voice == "vi-VN-NamMinhNeural"


async def test_an_interrupted_run_is_not_logged_as_a_failed_one(tmp_path: Path, caplog) -> None:
    from services.scheduler.handlers import default_registry

    started = asyncio.Event()

    async def slow(job):
        started.set()
        await asyncio.sleep(60)

    registry = default_registry()
    registry.register("slow", slow)
    scheduler = Scheduler(tmp_path / "data", registry=registry, shutdown_grace_seconds=0.05)
    scheduler.load()
    scheduler.add_job("a", "x", kind="slow")
    await scheduler.start()
    await asyncio.wait_for(started.wait(), 10)
    with caplog.at_level(logging.INFO):
        await scheduler.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "job interrupted by shutdown; it runs again at the next start (no retry spent)" in messages
    assert "job failed; retry scheduled" not in messages
    (job,) = scheduler.list_jobs()
    assert job.status.value == "scheduled" and job.retry_count == 0


def test_the_demo_runs_end_to_end_twice_on_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(ROOT / "run_scheduler.py"), "demo", "--dir", str(folder), "--panels", "2"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((folder / "published").rglob("*.mp4"))) == 1  # the second run started afresh


def test_the_demo_makes_a_shorts_video_from_the_same_plan(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "demo", "--dir", str(tmp_path / "demo"), "--panels", "2", "--format", "shorts")
    assert code == 0, err
    assert "2 panels" in out and "1080x1920" in out
    code, _, err = run(capsys, "demo", "--dir", str(tmp_path / "other"), "--format", "square")
    assert code == 2 and "invalid choice: 'square'" in err
