"""The CLI in-process: output, exit codes, one-line errors, nothing written on a rejection."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.scheduler.cli import main


@pytest.fixture
def cli(data_dir: Path, capsys):
    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        code = main(["--data-dir", str(data_dir), *argv], environ=env or {})
        out, err = capsys.readouterr()
        return code, out, err

    return run


def disk_state(data_dir: Path) -> dict[str, str]:
    jobs = data_dir / "jobs"
    return {p.name: p.read_text(encoding="utf-8") for p in jobs.glob("*.json")} if jobs.exists() else {}


def test_add_job_prints_the_id_and_show_finds_it(cli) -> None:
    code, out, err = cli("add-job", "--account", "acc", "--content", "Chương 1: Xin chào")
    assert code == 0 and err == ""
    job_id = out.strip()
    code, out, _ = cli("show", job_id, "--json")
    job = json.loads(out)
    assert code == 0 and job["job_id"] == job_id and job["content"] == "Chương 1: Xin chào"
    assert job["kind"] == "log" and job["priority"] == 2 and job["max_retries"] == 3
    code, out, _ = cli("show", job_id)
    assert code == 0 and "Chương 1: Xin chào" in out and "Asia/Ho_Chi_Minh" in out


def test_add_job_json_and_options(cli) -> None:
    code, out, _ = cli("add-job", "--account", "acc", "--content", "x", "--priority", "urgent",
                       "--max-retries", "0", "--at", "2026-12-01T08:00", "--json",
                       env={"SCHEDULER_TIMEZONE": "Asia/Ho_Chi_Minh"})
    job = json.loads(out)
    assert code == 0
    assert job["priority"] == 4 and job["max_retries"] == 0
    assert job["scheduled_time"] == "2026-12-01T01:00:00Z"  # 08:00 Vietnam time


def test_at_with_offset_is_taken_as_given(cli) -> None:
    _, out, _ = cli("add-job", "--account", "a", "--content", "x", "--at", "2026-12-01T08:00:00+00:00", "--json")
    assert json.loads(out)["scheduled_time"] == "2026-12-01T08:00:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "a", "--content", "x" * 501], "error: content: must be at most 500 characters (got 501)"),
        (["--account", " ", "--content", "x"], "error: account_id: must be a non-empty string"),
        (["--account", "a", "--content", ""], "error: content: must be a non-empty string"),
        (["--account", "a", "--content", "x", "--priority", "9"], "error: priority: must be low, normal, high, urgent or 1..4"),
        (["--account", "a", "--content", "x", "--max-retries", "-1"], "error: max_retries: must be an integer >= 0, got -1"),
        (["--account", "a", "--content", "x", "--max-retries", "two"], "error: max_retries: must be an integer >= 0, got 'two'"),
        (["--account", "a", "--content", "x", "--at", "soon"], "error: scheduled_time (--at): must be ISO-8601"),
        (["--account", "a", "--content", "x", "--at", "2099-01-01T00:00"], "error: scheduled_time: must be within 1 year"),
        (["--account", "a", "--content", "x", "--kind", "shell"], "error: kind: must be one of: http.post, log"),
        (["--content", "x"], "error: usage: the following arguments are required: --account"),
    ],
    ids=["content501", "account", "empty", "priority", "retries-neg", "retries-text", "at-text", "at-far", "kind", "usage"],
)
def test_invalid_add_exits_2_with_one_line_and_writes_nothing(cli, data_dir, args, message) -> None:
    cli("add-job", "--account", "seed", "--content", "existing")
    before = disk_state(data_dir)
    code, out, err = cli("add-job", *args)
    assert code == 2
    assert out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert disk_state(data_dir) == before


def test_unknown_id_exits_1(cli, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    for command in ("show", "remove"):
        code, out, err = cli(command, "no-such-id")
        assert (code, out, err) == (1, "", "error: job not found: no-such-id\n")


def test_reads_of_a_missing_data_dir_say_so_and_create_nothing(cli, data_dir: Path) -> None:
    for argv in (["list"], ["show", "no-such-id"], ["remove", "no-such-id"]):
        code, out, err = cli(*argv)
        assert (code, out) == (1, "")
        assert err == f"error: data dir {data_dir} does not exist (nothing was added there yet; check --data-dir / DATA_DIR)\n"
        assert not data_dir.exists()


def test_usage_errors_exit_2_on_one_line(cli) -> None:
    for argv in ([], ["frobnicate"], ["list", "--bogus"], ["show"]):
        code, _, err = cli(*argv)
        assert code == 2 and err.startswith("error: usage:") and err.count("\n") == 1


def test_bad_environment_setting_exits_2(cli) -> None:
    code, _, err = cli("list", env={"SCHEDULER_TIMEZONE": "Mars/Olympus"})
    assert code == 2 and err == "error: SCHEDULER_TIMEZONE: unknown time zone: 'Mars/Olympus'\n"


def test_list_orders_and_filters(cli) -> None:
    now = datetime.now(timezone.utc)
    cli("add-job", "--account", "a", "--content", "low", "--priority", "low")
    cli("add-job", "--account", "b", "--content", "urgent-late", "--priority", "4",
        "--at", (now + timedelta(hours=2)).isoformat())
    cli("add-job", "--account", "a", "--content", "urgent-early", "--priority", "urgent",
        "--at", (now + timedelta(hours=1)).isoformat())
    code, out, _ = cli("list", "--json")
    assert code == 0
    assert [j["content"] for j in json.loads(out)] == ["urgent-early", "urgent-late", "low"]
    _, out, _ = cli("list", "--account", "a", "--json")
    assert [j["content"] for j in json.loads(out)] == ["urgent-early", "low"]
    _, out, _ = cli("list")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["JOB_ID", "ACCOUNT", "KIND", "STATUS", "PRIORITY"]
    assert "urgent-early" in lines[1] and "low" in lines[3] and lines[-1] == "3 jobs"
    code, _, err = cli("list", "--status", "nope")
    assert code == 2 and err.startswith("error: status: must be one of")


def test_remove_then_gone(cli, data_dir) -> None:
    _, out, _ = cli("add-job", "--account", "a", "--content", "x")
    job_id = out.strip()
    assert cli("remove", job_id)[:2] == (0, f"removed {job_id}\n")
    assert disk_state(data_dir) == {}
    assert cli("show", job_id)[0] == 1


def test_run_once_processes_due_jobs(cli) -> None:
    _, out, _ = cli("add-job", "--account", "a", "--content", "Xin chào")
    job_id = out.strip()
    code, _, _ = cli("run", "--once")
    assert code == 0
    _, out, _ = cli("show", job_id, "--json")
    assert json.loads(out)["status"] == "completed"


def test_data_dir_from_environment(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "elsewhere"
    assert main(["add-job", "--account", "a", "--content", "x"], environ={"DATA_DIR": str(folder)}) == 0
    assert list((folder / "jobs").glob("jobs_*.json"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_LEVEL": "chatty"}, "error: LOG_LEVEL: must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ({"SHUTDOWN_GRACE_SECONDS": "nan"}, "error: SHUTDOWN_GRACE_SECONDS: must be a finite number >= 0"),
        ({"API_PORT": "70000"}, "error: API_PORT: must be between 0 and 65535"),
        ({"MAX_CONCURRENT_JOBS": "0"}, "error: MAX_CONCURRENT_JOBS: must be between 1 and 1000"),
    ],
)
def test_bad_settings_exit_2_even_for_run(cli, env, message) -> None:
    code, _, err = cli("run", "--once", env=env)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1


def test_show_keeps_unknown_time_like_keys_as_text(cli, data_dir) -> None:
    _, out, _ = cli("add-job", "--account", "a", "--content", "x")
    job_id = out.strip()
    path = next((data_dir / "jobs").glob("jobs_*.json"))
    body = json.loads(path.read_text(encoding="utf-8"))
    body["jobs"][job_id]["posted_at"] = "tomorrow"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    code, out, err = cli("show", job_id)
    assert code == 0 and "posted_at: tomorrow" in out, err
