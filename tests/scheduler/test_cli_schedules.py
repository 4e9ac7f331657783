"""The schedule commands in-process (``schedule …``, ``executions``, ``stats``), on the files
and, once, through a real daemon: output, JSON answers, exit codes, one-line refusals that
leave the data dir as it was."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.scheduler.api_token import read_token
from services.scheduler.audit import read_audit
from services.scheduler.cli import main
from services.scheduler.cli_schedules import cli_actor, parse_duration
from services.scheduler.clock import load_timezone
from services.scheduler.errors import JobValidationError
from services.scheduler.lock import read_holder
from services.scheduler.models import ScheduledJob
from services.scheduler.schedule_model import Schedule
from services.scheduler.schedule_store import ScheduleStore
from services.scheduler.scheduler import Scheduler
from services.scheduler.storage import JobStorage

ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc


class FailKind:
    """An extension adding the kind ``fail`` (every run raises), for the stats."""

    def install(self, scheduler: Scheduler) -> None:
        async def fail(job: ScheduledJob) -> None:
            raise RuntimeError("boom")

        if "fail" not in scheduler.registry:
            scheduler.registry.register("fail", fail)

    def add_commands(self, subparsers: Any, common: Any) -> None:
        pass


@pytest.fixture
def cli(data_dir: Path, capsys):
    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        code = main(["--data-dir", str(data_dir), *argv], environ=env or {}, extensions=[FailKind()])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*argv: str) -> Any:
        code, out, err = cli(*argv, "--json")
        assert (code, err) == (0, ""), err
        return json.loads(out)

    return run


def files(data_dir: Path) -> dict[str, bytes]:
    """Every file of the data dir but the lock, by path: what a refusal must leave alone."""
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in sorted(data_dir.rglob("*")) if p.is_file() and p.name != "scheduler.lock"
    }


def stored(data_dir: Path) -> dict[str, dict[str, Any]]:
    """schedules.json as it is on disk, by id."""
    return json.loads((data_dir / "schedules.json").read_text(encoding="utf-8"))["schedules"]


def jobs_on_disk(data_dir: Path) -> dict[str, ScheduledJob]:
    return JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")).load()


async def run_what_is_due(data_dir: Path) -> None:
    """What the daemon would do with the jobs the commands added: run them, record the ends."""
    scheduler = Scheduler(data_dir, extensions=[FailKind()])
    scheduler.load()
    await scheduler.run_once()
    await scheduler.schedules.history.flush()
    scheduler.schedules.history.close()
    scheduler.audit.close()


# -- adding ----------------------------------------------------------------------------------


def test_add_prints_the_id_and_saves_the_schedule_before_it_returns(cli, cli_json, data_dir) -> None:
    code, out, err = cli("schedule", "add", "morning report", "--cron", "0 8 * * *", "--timezone", "Asia/Ho_Chi_Minh",
                         "--message", "xin chào", "--tag", "report", "--tag", "daily")
    assert (code, err) == (0, "")
    schedule_id = out.strip()
    record = stored(data_dir)[schedule_id]  # on disk when the command returned
    assert record["name"] == "morning report" and record["cron_expression"] == "0 8 * * *"
    assert record["target_command"] == "log" and record["command_payload"] == {"message": "xin chào"}
    assert record["tags"] == ["report", "daily"] and record["created_by"] == cli_actor()
    shown = cli_json("schedule", "show", schedule_id)
    assert shown["schedule_id"] == schedule_id and shown["status"] == "active"
    next_run = datetime.fromisoformat(shown["next_run_time"])
    assert next_run.utcoffset() == timedelta(hours=7) and (next_run.hour, next_run.minute) == (8, 0)
    created = [e for e in read_audit(data_dir, target="schedule") if e["action"] == "schedule.create"]
    assert [(e["id"], e["actor"]) for e in created] == [(schedule_id, cli_actor())]


def test_cli_actor_is_cli_and_the_login_name(monkeypatch) -> None:
    monkeypatch.setenv("LOGNAME", "alice")
    assert cli_actor() == "cli:alice"


@pytest.mark.parametrize(
    ("every", "seconds"),
    [("3600", 3600), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400)],
)
def test_every_takes_seconds_or_a_duration(every, seconds) -> None:
    assert parse_duration(every) == seconds


@pytest.mark.parametrize("every", ["", "soon", "15x", "h", "1.5h", "-5", "15m 3"])
def test_every_refuses_what_is_not_a_duration(every) -> None:
    with pytest.raises(JobValidationError, match=r"interval_seconds \(--every\): must be seconds or a duration"):
        parse_duration(every)


def test_add_every_with_its_options(cli_json) -> None:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    schedule = cli_json(
        "schedule", "add", "poll", "--every", "15m", "--kind", "log", "--payload", '{"message": "poll"}',
        "--priority", "8", "--max-retries", "1", "--coalesce", "all", "--max-instances", "2",
        "--pause-after-failures", "3", "--account", "kenh-a", "--start", start.isoformat(),
        "--end", (start + timedelta(days=7)).isoformat(),
    )
    assert schedule["schedule_type"] == "interval" and schedule["interval_seconds"] == 900
    assert (schedule["priority"], schedule["max_retries"], schedule["coalesce"]) == (8, 1, "all")
    assert (schedule["max_instances"], schedule["pause_after_failures"], schedule["account_id"]) == (2, 3, "kenh-a")
    assert datetime.fromisoformat(schedule["start_date"]) == start
    assert datetime.fromisoformat(schedule["next_run_time"]) == start  # the first fire is at the start


def test_at_without_an_offset_is_in_the_schedules_zone(cli_json) -> None:
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    schedule = cli_json("schedule", "add", "once", "--at", f"{day}T08:00", "--timezone", "America/New_York",
                        "--message", "x")
    expected = datetime(day.year, day.month, day.day, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    assert datetime.fromisoformat(schedule["run_at"]) == expected
    assert schedule["schedule_type"] == "one_time" and schedule["timezone"] == "America/New_York"


def test_add_now_paused_and_the_default_kind(cli_json) -> None:
    schedule = cli_json("schedule", "add", "later", "--now", "--paused", "--payload", '{"message": "m"}')
    assert schedule["schedule_type"] == "immediate" and schedule["target_command"] == "log"
    assert schedule["status"] == "paused" and schedule["next_run_time"] is None


# -- listing and showing ---------------------------------------------------------------------------


def test_list_is_a_table_with_filters_and_pages(cli, cli_json) -> None:
    cron = cli_json("schedule", "add", "b-cron", "--cron", "30 7 * * 1-5", "--message", "x", "--tag", "work")
    every = cli_json("schedule", "add", "a-every", "--every", "2h", "--message", "x", "--tag", "work")
    paused = cli_json("schedule", "add", "c-paused", "--every", "1d", "--message", "x", "--paused")
    code, out, err = cli("schedule", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TYPE", "WHEN", "NEXT", "RUN", "STATUS", "LAST", "FIRE"]
    assert [line.split()[1] for line in lines[1:4]] == ["a-every", "b-cron", "c-paused"]  # by name
    assert lines[1].startswith(every["schedule_id"][:8] + "  ") and every["schedule_id"] not in out
    assert "every 2h" in lines[1] and "active" in lines[1] and "+07" in lines[1]
    assert "30 7 * * 1-5" in lines[2] and "paused" in lines[3]
    assert lines[-1] == "3 schedules"
    page = cli_json("schedule", "list", "--tag", "work")
    assert [s["schedule_id"] for s in page["schedules"]] == [every["schedule_id"], cron["schedule_id"]]
    assert page["total"] == 2
    page = cli_json("schedule", "list", "--status", "paused")
    assert [s["schedule_id"] for s in page["schedules"]] == [paused["schedule_id"]]
    assert cli_json("schedule", "list", "--created-by", "api")["total"] == 0
    assert cli_json("schedule", "list", "--created-by", cli_actor())["total"] == 3
    code, out, _ = cli("schedule", "list", "--limit", "1", "--offset", "1")
    assert code == 0 and "b-cron" in out and "a-every" not in out
    assert out.splitlines()[-1] == "1 of 3 schedules, from 2 (next: --offset 2)"


def test_show_names_each_field_with_local_times(cli, cli_json) -> None:
    schedule = cli_json("schedule", "add", "ny", "--cron", "0 9 * * *", "--timezone", "America/New_York",
                        "--message", "x")
    code, out, _ = cli("schedule", "show", "ny")
    assert code == 0
    fields = dict(line.lstrip().split(": ", 1) for line in out.splitlines())
    assert fields["schedule_id"] == schedule["schedule_id"] and out.splitlines()[0].strip().startswith("schedule_id")
    assert fields["cron_expression"] == "0 9 * * *" and fields["paused"] == "false"
    assert fields["next_run_time"].endswith(" 09:00 EST)") or fields["next_run_time"].endswith(" 09:00 EDT)")


def test_read_commands_on_a_missing_data_dir_create_nothing(cli, data_dir) -> None:
    for argv in (["schedule", "list"], ["schedule", "show", "x"], ["executions"], ["stats"]):
        code, out, err = cli(*argv)
        assert (code, out) == (1, "") and err.startswith("error: data dir ") and err.count("\n") == 1
    assert not data_dir.exists()


# -- naming a schedule ------------------------------------------------------------------------------


def test_a_schedule_is_named_by_id_start_of_id_or_name(cli, cli_json) -> None:
    schedule = cli_json("schedule", "add", "Báo cáo sáng", "--cron", "0 8 * * *", "--message", "x")
    schedule_id = schedule["schedule_id"]
    for ref in (schedule_id, schedule_id.upper(), schedule_id[:8], schedule_id[:13], "Báo cáo sáng"):
        assert cli_json("schedule", "show", ref)["schedule_id"] == schedule_id, ref
    code, out, err = cli("schedule", "show", schedule_id[:7])  # too short to be taken for the id
    assert (code, out) == (1, "")
    assert err == f"error: no such schedule: {schedule_id[:7]} (list them with: schedule list)\n"


def put_schedules(data_dir: Path, *ids: str) -> None:
    store = ScheduleStore(data_dir)
    store.load()
    for number, schedule_id in enumerate(ids):
        store.put(Schedule(schedule_id=schedule_id, name=f"twin {number}", schedule_type="cron",
                           cron_expression="0 8 * * *", target_command="log", command_payload={"message": "x"}))
    store.flush()


def test_a_start_of_id_shared_by_two_schedules_is_refused_naming_both(cli, cli_json, data_dir) -> None:
    one, two = "abcdef12-0000-4000-8000-000000000001", "abcdef12-0000-4000-8000-000000000002"
    put_schedules(data_dir, one, two)
    before = files(data_dir)
    for argv in (["show", "abcdef12"], ["pause", "abcdef12-0000"], ["remove", "abcdef12"], ["trigger", "abcdef12"]):
        code, out, err = cli("schedule", *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("error: schedule: ") and one in err and two in err and "twin 0" in err
        assert err.count("\n") == 1
    code, _, err = cli("executions", "--schedule", "abcdef12")
    assert code == 2 and one in err and two in err
    assert files(data_dir) == before
    assert cli_json("schedule", "show", one)["name"] == "twin 0"  # the whole id is one of them
    assert cli_json("schedule", "show", "twin 1")["schedule_id"] == two


# -- changing -----------------------------------------------------------------------------------------


def test_update_replaces_the_fields_given_and_keeps_the_others(cli, cli_json, data_dir) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    schedule = cli_json("schedule", "add", "s", "--cron", "0 8 * * *", "--message", "old", "--tag", "a",
                        "--end", (start + timedelta(days=10)).isoformat(), "--priority", "3")
    schedule_id = schedule["schedule_id"]
    code, out, err = cli("schedule", "update", "s", "--cron", "30 9 * * *", "--message", "new", "--name", "renamed",
                         "--end", "none")
    assert (code, err) == (0, "")
    assert out.startswith(f"updated {schedule_id} (renamed); next run ") and " 09:30 +07" in out
    record = stored(data_dir)[schedule_id]
    assert (record["name"], record["cron_expression"], record["command_payload"]) == ("renamed", "30 9 * * *",
                                                                                       {"message": "new"})
    assert record["end_date"] is None and record["tags"] == ["a"] and record["priority"] == 3
    updated = cli_json("schedule", "update", schedule_id[:8], "--every", "6h")
    assert updated["schedule_type"] == "interval" and updated["cron_expression"] is None
    audit = [e["action"] for e in reversed(read_audit(data_dir, target_id=schedule_id))]
    assert audit == ["schedule.create", "schedule.update", "schedule.update"]


def test_pause_and_resume(cli, cli_json, data_dir) -> None:
    schedule_id = cli_json("schedule", "add", "p", "--every", "1h", "--message", "x")["schedule_id"]
    code, out, err = cli("schedule", "pause", schedule_id[:8], "--reason", "holiday")
    assert (code, err) == (0, "") and out == f"paused {schedule_id} (p)\n"
    record = stored(data_dir)[schedule_id]
    assert record["paused"] is True and record["paused_reason"] == "holiday"
    assert cli_json("schedule", "show", "p")["status"] == "paused"
    code, out, _ = cli("schedule", "pause", "p")
    assert code == 0 and "paused already" in out
    resumed = cli_json("schedule", "resume", "p")
    assert resumed["status"] == "active" and resumed["next_run_time"] is not None
    assert stored(data_dir)[schedule_id]["paused"] is False
    actions = [(e["action"], e["actor"]) for e in reversed(read_audit(data_dir, target_id=schedule_id))]
    assert actions == [("schedule.create", cli_actor()), ("schedule.pause", cli_actor()),
                       ("schedule.resume", cli_actor())]


def test_trigger_adds_the_run_and_its_execution_record(cli, cli_json, data_dir) -> None:
    schedule_id = cli_json("schedule", "add", "t", "--cron", "0 8 * * *", "--message", "x", "--paused")["schedule_id"]
    code, out, err = cli("schedule", "trigger", "t")
    assert (code, err) == (0, "")
    execution_id = out.strip()
    assert execution_id.startswith(f"{schedule_id}-") and "-t" in execution_id
    job = jobs_on_disk(data_dir)[execution_id]  # the job is on disk: the daemon will run it
    assert job.kind == "log" and job.model_extra["payload"] == {"message": "x"}
    assert job.model_extra["triggered_by"] == f"trigger:{cli_actor()}"
    history = "".join(p.read_text() for p in (data_dir / "executions").glob("*.jsonl"))
    assert execution_id in history  # the record is on disk too
    answer = cli_json("schedule", "trigger", schedule_id)
    assert answer["job"]["job_id"] == answer["execution_id"] and answer["schedule"]["schedule_id"] == schedule_id


def test_backfill_adds_the_missing_fires_of_a_past_window(cli, cli_json, data_dir) -> None:
    schedule_id = cli_json("schedule", "add", "hourly", "--cron", "0 * * * *", "--message", "x")["schedule_id"]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = (hour - timedelta(hours=4, minutes=30)).isoformat(), (hour - timedelta(minutes=30)).isoformat()
    answer = cli_json("schedule", "backfill", "hourly", "--from", start, "--to", end)
    assert (answer["fires"], len(answer["added"]), answer["existing"]) == (4, 4, [])
    assert set(answer["added"]) <= set(jobs_on_disk(data_dir))
    code, out, err = cli("schedule", "backfill", "hourly", "--from", start, "--to", end)
    assert (code, err) == (0, "")
    assert out == f"backfilled {schedule_id} (hourly): 4 fires in the window, 0 added, 4 had a run already\n"


def test_remove(cli, cli_json, data_dir) -> None:
    schedule_id = cli_json("schedule", "add", "r", "--every", "1h", "--message", "x")["schedule_id"]
    code, out, err = cli("schedule", "remove", "r")
    assert (code, err, out) == (0, "", f"removed {schedule_id} (r)\n")
    assert schedule_id not in stored(data_dir)
    code, _, err = cli("schedule", "show", schedule_id)
    assert code == 1 and err == f"error: no such schedule: {schedule_id} (list them with: schedule list)\n"
    kept = cli_json("schedule", "add", "k", "--every", "1h", "--message", "x")["schedule_id"]
    answer = cli_json("schedule", "remove", kept[:8])
    assert answer["deleted"] == kept and answer["schedule"]["name"] == "k"


# -- executions and stats --------------------------------------------------------------------------------


def test_executions_and_stats_after_runs(cli, cli_json, data_dir, capsys) -> None:
    good = cli_json("schedule", "add", "good", "--cron", "0 8 * * *", "--message", "x")["schedule_id"]
    bad = cli_json("schedule", "add", "bad", "--cron", "0 8 * * *", "--kind", "fail", "--max-retries", "0")
    idle = cli_json("schedule", "add", "idle", "--cron", "0 8 * * *", "--message", "x")["schedule_id"]
    runs = [cli_json("schedule", "trigger", name)["execution_id"] for name in ("good", "good", "bad")]
    asyncio.run(run_what_is_due(data_dir))
    capsys.readouterr()  # the failed run's log line

    page = cli_json("executions")
    assert {r["execution_id"] for r in page["executions"]} == set(runs) and page["has_more"] is False
    assert [r["fire_time"] for r in page["executions"]] == sorted((r["fire_time"] for r in page["executions"]),
                                                                  reverse=True)  # newest first
    assert {r["execution_id"] for r in cli_json("executions", "--schedule", "good")["executions"]} == set(runs[:2])
    failed = cli_json("executions", "--status", "failed")["executions"]
    assert [(r["execution_id"], r["error"]) for r in failed] == [(runs[2], "RuntimeError: boom")]
    assert len(cli_json("executions", "--limit", "1")["executions"]) == 1
    code, out, _ = cli("executions", "--schedule", "bad")
    assert code == 0 and runs[2] in out and "failed" in out and "boom" in out
    assert out.splitlines()[-1] == "1 execution, newest first"

    stats = cli_json("stats", "good")
    assert (stats["schedule_id"], stats["total"], stats["succeeded"], stats["success_rate"]) == (good, 2, 2, 1.0)
    assert stats["duration_p50_seconds"] is not None and stats["window_days"] == 30
    every = cli_json("stats", "--days", "7")
    assert every["window_days"] == 7
    assert {s["name"]: (s["total"], s["success_rate"]) for s in every["schedules"]} == {
        "bad": (1, 0.0), "good": (2, 1.0), "idle": (0, None)}
    code, out, _ = cli("stats")
    lines = {line.split()[1]: line.split() for line in out.splitlines()[1:-1]}
    assert lines["good"][2:5] == ["2", "2", "0"] and lines["good"][6] == "100.0%"
    assert lines["bad"][2:5] == ["1", "0", "1"] and lines["bad"][6] == "0.0%"
    assert lines["idle"][0] == idle[:8] and lines["idle"][6:] == ["-", "-", "-"]
    assert bad["schedule_id"][:8] == lines["bad"][0]
    code, out, _ = cli("stats", "bad")
    assert code == 0 and "runs: 1" in out and "success rate: 0.0%" in out and "failed 1" in out


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(cli_json, data_dir) -> str:
    """One schedule on disk (a cron one), so a refusal has a file to leave alone."""
    return cli_json("schedule", "add", "seed", "--cron", "0 8 * * *", "--message", "x")["schedule_id"]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["add", "n", "--now", "--kind", "shell"], 2, "error: target_command: must be a registered kind: fail, "),
        (["add", "n", "--cron", "61 * * * *", "--message", "x"], 2, "error: cron_expression: Bad minute"),
        (["add", "n", "--cron", "0 8 * *", "--message", "x"], 2, "error: cron_expression: must have 5 fields"),
        (["add", "n", "--now", "--payload", "{x"], 2, "error: command_payload (--payload): is not valid JSON"),
        (["add", "n", "--now", "--payload", "[1]"], 2, "error: command_payload (--payload): must be a JSON object"),
        (["add", "n", "--now", "--payload", '{"message": "x", "msg": 1}'], 2,
         "error: command_payload.msg: unknown key for log"),
        (["add", "n", "--now", "--message", "x", "--kind", "fail"], 2,
         "error: command_payload.message: unknown key for fail"),
        (["add", "n", "--every", "soon", "--message", "x"], 2, "error: interval_seconds (--every): must be seconds"),
        (["add", "n", "--every", "0", "--message", "x"], 2, "error: interval_seconds: input should be greater"),
        (["add", "n", "--now", "--message", "x", "--timezone", "Mars/Base"], 2,
         "error: timezone: unknown time zone: 'Mars/Base'"),
        (["add", "n", "--now", "--message", "x", "--priority", "11"], 2, "error: priority: input should be less"),
        (["add", "n", "--now", "--message", "x", "--priority", "high"], 2, "error: priority: must be an integer"),
        (["add", "n", "--at", "2020-01-01T08:00", "--message", "x"], 2, "error: run_at: is in the past"),
        (["add", "n", "--at", "tomorrow", "--message", "x"], 2, "error: run_at (--at): must be ISO-8601"),
        (["add", "n", "--message", "x"], 2, "error: usage: one of the arguments --cron --every --at --now is required"),
        (["add", "n", "--now", "--every", "1h"], 2, "error: usage: argument --every: not allowed with argument --now"),
        (["add", "n", "--now", "--message", "x", "--payload", "{}"], 2,
         "error: usage: argument --payload: not allowed"),
        (["add", "seed", "--now", "--message", "x"], 1, "error: a schedule named 'seed' exists already"),
        (["update", "seed"], 2, "error: update: nothing to change"),
        (["update", "seed", "--cron", "0 25 * * *"], 2, "error: cron_expression: Bad hour"),
        (["update", "seed", "--kind", "shell"], 2, "error: target_command: must be a registered kind"),
        (["update", "seed", "--payload", '{"message": 5}'], 2, "error: command_payload.message: input should be"),
        (["update", "seed", "--name", "x" * 201], 2, "error: name: string should have at most 200 characters"),
        (["update", "nope", "--every", "1h"], 1, "error: no such schedule: nope (list them with: schedule list)"),
        (["pause", "nope"], 1, "error: no such schedule: nope"),
        (["resume", "12345678-1234-4234-8234-123456789012"], 1, "error: no such schedule: 12345678-"),
        (["trigger", "nope"], 1, "error: no such schedule: nope"),
        (["remove", "nope"], 1, "error: no such schedule: nope"),
        (["show", ""], 2, "error: schedule: give a schedule id"),
        (["backfill", "seed", "--from", "2026-01-01T00:00", "--to", "2999-01-01T00:00"], 2,
         "error: end: must not be in the future"),
        (["backfill", "seed", "--from", "yesterday", "--to", "2026-01-01T00:00"], 2,
         "error: start (--from): must be ISO-8601"),
        (["backfill", "seed", "--from", "2026-01-01T00:00"], 2,
         "error: usage: the following arguments are required: --to"),
        (["list", "--status", "sleeping"], 2, "error: usage: argument --status: invalid choice: 'sleeping'"),
        (["list", "--limit", "0"], 2, "error: limit: must be from 1 to 500, got 0"),
        ([], 2, "error: usage: the following arguments are required: ACTION"),
    ],
    ids=lambda value: None if isinstance(value, list) else str(value)[:40],
)
def test_a_refusal_is_one_line_and_changes_nothing(cli, data_dir, seeded, argv, code, message) -> None:
    before = files(data_dir)
    got, out, err = cli("schedule", *argv)
    assert (got, out) == (code, ""), err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert files(data_dir) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["executions", "--status", "done"], "error: usage: argument --status: invalid choice: 'done'"),
        (["executions", "--schedule", "nope"], "error: no such schedule: nope"),
        (["executions", "--limit", "501"], "error: limit: must be from 1 to 500, got 501"),
        (["stats", "--days", "0"], "error: days: must be from 1 to 366, got 0"),
        (["stats", "nope"], "error: no such schedule: nope"),
    ],
)
def test_executions_and_stats_refusals(cli, data_dir, seeded, argv, message) -> None:
    before = files(data_dir)
    code, out, err = cli(*argv)
    assert code in (1, 2) and out == "" and err.startswith(message) and err.count("\n") == 1
    assert files(data_dir) == before


# -- through a running daemon ---------------------------------------------------------------------------


class Daemon:
    """``run_scheduler.py run`` on ``data_dir`` with API_PORT=0, until ``stop``."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "API_PORT")}
        env.update(DATA_DIR=str(data_dir), API_PORT="0", PYTHONPATH=str(ROOT))
        self.data_dir = data_dir
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_scheduler.py"), "run"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            holder = read_holder(self.data_dir)
            if holder and holder.get("ready") and holder.get("pid") == self.proc.pid:
                return int(holder["api_port"])
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.proc.stderr.read()}")
            time.sleep(0.02)
        raise AssertionError("the daemon did not become ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.proc.stderr.close()


@pytest.fixture
def daemon(data_dir: Path):
    data_dir.mkdir(parents=True)
    started = Daemon(data_dir)
    try:
        port = started.wait_ready()
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {read_token(data_dir)}"}, timeout=10)
        yield api
        api.close()
    finally:
        assert started.stop() == 0


def test_the_commands_go_through_a_running_daemon(cli, cli_json, daemon, data_dir) -> None:
    code, out, err = cli("schedule", "add", "via daemon", "--every", "6h", "--message", "hi", "--tag", "d")
    assert (code, err) == (0, "")
    schedule_id = out.strip()
    seen = daemon.get(f"/api/v1/schedules/{schedule_id}").json()  # the daemon made it, as the CLI's user
    assert (seen["name"], seen["created_by"], seen["interval_seconds"]) == ("via daemon", cli_actor(), 21600)
    assert cli_json("schedule", "show", schedule_id[:8])["name"] == "via daemon"
    assert [s["schedule_id"] for s in cli_json("schedule", "list", "--tag", "d")["schedules"]] == [schedule_id]

    before = (data_dir / "schedules.json").read_bytes()  # the same refusals as on the files
    for argv, code, message in (
        (["schedule", "add", "bad", "--cron", "0 8 * *", "--message", "x"], 2, "error: cron_expression: must have 5"),
        (["schedule", "add", "bad", "--now", "--kind", "shell"], 2, "error: target_command: must be a registered kind"),
        (["schedule", "add", "bad", "--now", "--message", "x", "--priority", "11"], 2,
         "error: priority: input should be less than or equal to 10"),
        (["schedule", "update", "via daemon", "--max-instances", "0"], 2,
         "error: max_instances: input should be greater than or equal to 1"),
        (["schedule", "add", "via daemon", "--now", "--message", "x"], 1, "error: a schedule named 'via daemon'"),
        (["schedule", "pause", "nope"], 1, "error: no such schedule: nope (list them with: schedule list)"),
    ):
        got, out, err = cli(*argv)
        assert (got, out) == (code, "") and err.startswith(message) and err.count("\n") == 1, err
    assert (data_dir / "schedules.json").read_bytes() == before

    paused = cli_json("schedule", "pause", "via daemon", "--reason", "maintenance")
    assert paused["status"] == "paused"
    seen = daemon.get(f"/api/v1/schedules/{schedule_id}").json()
    assert (seen["paused"], seen["paused_reason"]) == (True, "maintenance")
    updated = cli_json("schedule", "update", "via daemon", "--cron", "0 8 * * *", "--priority", "9")
    assert daemon.get(f"/api/v1/schedules/{schedule_id}").json()["cron_expression"] == "0 8 * * *"
    assert updated["priority"] == 9

    execution_id = cli_json("schedule", "trigger", schedule_id)["execution_id"]  # runs, paused or not
    deadline = time.monotonic() + 20
    while True:
        records = cli_json("executions", "--schedule", "via daemon")["executions"]
        if [r["status"] for r in records] == ["succeeded"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["execution_id"], r["status"], r["triggered_by"]) for r in records] == [
        (execution_id, "succeeded", f"trigger:{cli_actor()}")]
    assert cli_json("stats", "via daemon")["succeeded"] == 1
    code, out, _ = cli("stats")
    assert code == 0 and "via daemon" in out and "100.0%" in out

    assert cli_json("schedule", "resume", schedule_id)["status"] == "active"
    assert cli_json("schedule", "remove", schedule_id)["deleted"] == schedule_id
    assert daemon.get(f"/api/v1/schedules/{schedule_id}").status_code == 404
