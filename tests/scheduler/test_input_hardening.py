"""What a new user types, and what someone trying to break it types: one clear line, nothing stored.

Job ids have one shape; text is NFC before it is counted; control characters are refused;
unbounded numbers are bounded; a job already 24 h late is stored with a warning; every API
error has one JSON shape; the client quotes what it puts in a URL.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.pipeline.cli_entry import main as pipeline_main
from services.scheduler.api import IDEMPOTENCY_NAMESPACE, create_app
from services.scheduler.clock import utc_now
from services.scheduler.cli import main
from services.scheduler.daemon_client import DaemonClient
from services.scheduler.errors import JobConflictError, JobValidationError, OutcomeUnknownError
from services.scheduler.scheduler import Scheduler

TOKEN = "test-token"
# 500 characters of Vietnamese as NFC; decomposed (NFD, as macOS types it) it is longer
VIETNAMESE = ("Chương một: Cậu bé Minh lên núi hái nấm và gặp ông rồng. " * 9)[:500]


@pytest.fixture
def cli(data_dir: Path, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--data-dir", str(data_dir), *argv], environ={})
        out, err = capsys.readouterr()
        return code, out, err

    return run


def disk_state(data_dir: Path) -> dict[str, bytes]:
    jobs = data_dir / "jobs"
    return {p.name: p.read_bytes() for p in jobs.rglob("*") if p.is_file()} if jobs.exists() else {}


# -- job ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["foo/../x", "x?y=1", "../etc", "a b", "a.b", "é", "x" * 65, ""])
def test_show_and_remove_refuse_an_id_that_is_not_a_job_id(cli, data_dir: Path, bad: str) -> None:
    code, out, err = cli("add-job", "--account", "a", "--content", "kept")
    kept = out.strip()
    before = disk_state(data_dir)
    for command in ("show", "remove"):
        code, out, err = cli(command, bad)
        assert (code, out) == (2, "")
        assert err.startswith("error: job_id: must be 1-64 letters, digits, '-' or '_'") and err.count("\n") == 1
    assert disk_state(data_dir) == before
    assert cli("show", kept)[0] == 0


def test_the_client_quotes_every_path_segment() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"error": "not_found", "message": "job not found"})

    client = DaemonClient(1, "t", transport=httpx.MockTransport(answer))
    for job_id in ("foo/../x", "x?y=1", "a#b"):
        with pytest.raises(Exception):
            client.get_job(job_id)
        with pytest.raises(Exception):
            client.remove_job(job_id)
    assert seen == [
        "/api/v1/jobs/foo%2F..%2Fx", "/api/v1/jobs/foo%2F..%2Fx",
        "/api/v1/jobs/x%3Fy%3D1", "/api/v1/jobs/x%3Fy%3D1",
        "/api/v1/jobs/a%23b", "/api/v1/jobs/a%23b",
    ]


# -- text ----------------------------------------------------------------------------------


def test_vietnamese_typed_decomposed_counts_as_typed_and_is_stored_nfc(cli) -> None:
    decomposed = unicodedata.normalize("NFD", VIETNAMESE)
    assert len(decomposed) > 600 and len(VIETNAMESE) == 500
    code, out, err = cli("add-job", "--account", unicodedata.normalize("NFD", "kênh-một"), "--content", decomposed, "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["content"] == VIETNAMESE and job["account_id"] == "kênh-một"
    # listed by the account typed composed (NFC), or decomposed again: the same job
    for typed in ("kênh-một", unicodedata.normalize("NFD", "kênh-một")):
        code, out, _ = cli("list", "--account", typed, "--json")
        assert [j["job_id"] for j in json.loads(out)] == [job["job_id"]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--account", "a", "--content", "x\x1b[2J"], "content: must not contain control characters"),
        (["--account", "a", "--content", "x\x00y"], "content: must not contain control characters"),
        (["--account", "a", "--content", "x\x9b31m"], "content: must not contain control characters"),
        (["--account", "a\nb", "--content", "x"], "account_id: must not contain control characters, newlines or tabs"),
        (["--account", "a\x1b", "--content", "x"], "account_id: must not contain control characters"),
        (["--account", "a" * 65, "--content", "x"], "account_id: must be at most 64 characters (got 65)"),
        (["--account", "a/b", "--content", "x"], "account_id: may hold only letters, digits"),
        (["--account", "a", "--content", "x", "--max-retries", "1" * 20], "max_retries: must be an integer from 0 to 100"),
        (["--account", "a", "--content", "x", "--max-retries", "101"], "max_retries: must be an integer from 0 to 100"),
        (["--account", "a", "--content", "x", "--kind", "lo\ng"], "kind: must not contain control characters"),
    ],
    ids=["esc", "nul", "c1-csi", "newline-account", "esc-account", "long-account", "slash-account",
         "huge-retries", "101-retries", "kind-newline"],
)
def test_control_characters_and_unbounded_values_are_refused(cli, data_dir: Path, argv, message) -> None:
    cli("add-job", "--account", "a", "--content", "existing")
    before = disk_state(data_dir)
    code, out, err = cli("add-job", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert "\x1b" not in err and "\x00" not in err
    assert disk_state(data_dir) == before


def test_newlines_and_tabs_in_content_are_kept_and_windows_line_ends_made_plain(cli) -> None:
    code, out, _ = cli("add-job", "--account", "a", "--content", "dòng 1\r\ndòng 2\tcột", "--json")
    assert code == 0 and json.loads(out)["content"] == "dòng 1\ndòng 2\tcột"


def test_a_stored_error_with_a_terminal_escape_is_shown_escaped(cli, data_dir: Path) -> None:
    code, out, _ = cli("add-job", "--account", "a", "--content", "x")
    job_id = out.strip()
    scheduler = Scheduler(data_dir)
    scheduler.load()
    job = scheduler.get_job(job_id)
    scheduler.manager.save(job.model_copy(update={"error": "boom \x1b[2J\x1b]0;owned\x07"}))
    scheduler.manager.commit()
    code, out, _ = cli("show", job_id)
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "boom \\x1b[2J\\x1b]0;owned\\x07" in out


# -- late jobs ------------------------------------------------------------------------------


def test_a_job_more_than_a_day_late_is_stored_with_a_warning(cli) -> None:
    when = (utc_now() - timedelta(days=2)).isoformat()
    code, out, err = cli("add-job", "--account", "a", "--content", "x", "--at", when, "--json")
    assert code == 0
    job = json.loads(out)
    assert len(job["warnings"]) == 1
    assert job["warnings"][0].startswith("scheduled_time 20") and job["warnings"][0].endswith(
        "is more than 24 h ago: the job will expire without running (give a later --at to run it)"
    )
    assert err == f"warning: {job['warnings'][0]}\n"
    # an hour late is normal (it runs at once): no warning
    code, out, err = cli("add-job", "--account", "a", "--content", "x", "--at", (utc_now() - timedelta(hours=1)).isoformat())
    assert code == 0 and err == ""


# -- repeated creates -----------------------------------------------------------------------


def test_a_repeated_create_answers_with_the_first_job(cli, data_dir: Path) -> None:
    argv = ["add-job", "--job-id", "my-job-1", "--account", "a", "--content", "x", "--at", "2026-12-30T08:00"]
    assert cli(*argv) == (0, "my-job-1\n", "")
    before = disk_state(data_dir)
    assert cli(*argv) == (0, "my-job-1\n", "")
    assert disk_state(data_dir) == before
    code, out, err = cli(*argv[:-1], "2026-12-31T08:00")
    assert (code, out) == (1, "")
    assert "job my-job-1 already exists" in err and "another scheduled_time" in err
    assert disk_state(data_dir) == before


# -- the command list -------------------------------------------------------------------------


def test_no_command_names_every_command(capsys) -> None:
    assert pipeline_main([]) == 2
    err = capsys.readouterr().err
    for command in ("add-job", "list", "show", "remove", "run", "quota", "daily", "demo", "doctor", "youtube-auth"):
        assert command in err
    assert err.count("\n") == 1


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
async def api(data_dir: Path):
    scheduler = Scheduler(data_dir)
    scheduler.load()
    transport = httpx.ASGITransport(app=create_app(scheduler, TOKEN), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        client.scheduler = scheduler
        yield client


def _one_shape(answer: httpx.Response) -> dict:
    body = answer.json()
    assert set(body) - {"field"} == {"error", "message"}, body
    assert isinstance(body["message"], str) and "\n" not in body["message"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "says"),
    [
        ("GET", "/nope", {}, 404, "not_found", "no such path: GET /nope"),
        ("PUT", "/api/v1/jobs", {}, 405, "method_not_allowed", "PUT is not allowed on /api/v1/jobs"),
        ("POST", "/api/v1/jobs", {"content": b'{"account_id": "a"', "headers": {"Content-Type": "application/json"}},
         422, "invalid_request", "body: is not valid JSON"),
        ("POST", "/api/v1/jobs", {"content": b'{"content": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
         422, "invalid_request", "body: is not valid UTF-8"),
        ("POST", "/api/v1/jobs", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"Content-Type": "application/json"}},
         422, "invalid_request", "body: must be at most"),
        ("POST", "/api/v1/jobs", {"content": b'{"a": ' * 50 + b"1" + b"}" * 50, "headers": {"Content-Type": "application/json"}},
         422, "invalid_request", "body: nests deeper than 8 levels"),
        ("POST", "/api/v1/jobs", {"content": b'{"account_id": "a", "content": "x"}', "headers": {"Content-Type": "text/plain"}},
         422, "invalid_request", "body: must be JSON sent as Content-Type: application/json (got Content-Type 'text/plain')"),
        ("POST", "/api/v1/jobs", {"content": b'{"account_id": "a", "content": "x"}', "headers": {"Content-Type": ""}},
         422, "invalid_request", "body: must be JSON sent as Content-Type: application/json (got no Content-Type)"),
        ("GET", "/api/v1/jobs/foo..bar%3Fx", {}, 422, "invalid_job", "job_id: must be 1-64 letters"),
        # the server decodes %2F: a path that no route matches, so nothing is removed
        ("DELETE", "/api/v1/jobs/a%2F..%2Fb", {}, 404, "not_found", "no such path: DELETE /api/v1/jobs/a/../b"),
        ("GET", "/api/v1/jobs/no-such-job", {}, 404, "not_found", "job not found: no-such-job"),
    ],
    ids=["unknown-path", "405", "bad-json", "bad-utf8", "too-large", "deep", "text-plain", "no-content-type",
         "bad-id-get", "bad-id-delete", "unknown-job"],
)
async def test_every_api_error_has_one_shape(api, method, path, kwargs, status, code, says) -> None:
    answer = await api.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text
    body = _one_shape(answer)
    assert body["error"] == code and body["message"].startswith(says), body
    assert api.scheduler.list_jobs() == []


async def test_an_unexpected_failure_is_a_json_500(api, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(api.scheduler, "list_jobs", broken)
    answer = await api.get("/api/v1/jobs")
    assert answer.status_code == 500
    assert _one_shape(answer) == {"error": "internal_error", "message": "the daemon failed on this request: ZeroDivisionError: oops"}


async def test_api_creates_are_idempotent_by_job_id_or_key(api) -> None:
    body = {"account_id": "a", "content": "x", "job_id": "fixed-1"}
    first = await api.post("/api/v1/jobs", json=body)
    again = await api.post("/api/v1/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = await api.post("/api/v1/jobs", json={**body, "content": "y"})
    assert other.status_code == 409 and _one_shape(other)["error"] == "conflict"
    keyed = [
        await api.post("/api/v1/jobs", json={"account_id": "a", "content": "z"}, headers={"Idempotency-Key": "k-42"})
        for _ in range(2)
    ]
    assert [r.status_code for r in keyed] == [201, 200]
    import uuid

    assert keyed[0].json()["job_id"] == str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, "k-42"))
    assert len(api.scheduler.list_jobs()) == 2


async def test_api_answer_warns_of_a_job_that_will_expire(api) -> None:
    when = (utc_now() - timedelta(days=3)).isoformat()
    answer = await api.post("/api/v1/jobs", json={"account_id": "a", "content": "x", "scheduled_time": when})
    assert answer.status_code == 201 and "will expire without running" in answer.json()["warnings"][0]


def test_a_change_the_daemon_does_not_answer_has_an_unknown_outcome() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = DaemonClient(1, "t", timeout=2, transport=httpx.MockTransport(slow))
    with pytest.raises(OutcomeUnknownError, match=r"within 2 s .*the outcome is unknown: check with `show job-9`"):
        client.add_job("a", "x", job_id="job-9")
    with pytest.raises(OutcomeUnknownError, match="check with `show job-9`"):
        client.remove_job("job-9")
    with pytest.raises(Exception, match="nothing was changed"):
        client.list_jobs()


# -- a failed write that changed nothing says so, and no undo is attempted -----------------


def test_a_write_refused_before_any_file_changed_needs_no_undo(data_dir: Path, caplog, monkeypatch) -> None:
    from services.scheduler import atomic_file, storage

    scheduler = Scheduler(data_dir)
    scheduler.load()
    scheduler.add_job("a", "first")
    real = atomic_file.write_atomic

    def refuse(path, data, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(storage, "write_atomic", refuse)
    with caplog.at_level(logging.ERROR), pytest.raises(Exception) as caught:
        scheduler.add_job("a", "second")
    assert str(caught.value).endswith("the job was not added; nothing was changed")
    assert "Permission denied" in str(caught.value)
    assert not [r for r in caplog.records if "could not undo" in r.getMessage()]
    monkeypatch.setattr(storage, "write_atomic", real)
    assert [j.content for j in scheduler.list_jobs()] == ["first"]


def test_conflicting_creates_through_the_manager(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir)
    scheduler.load()
    first = scheduler.add_job("a", "x", job_id="same-id")
    assert scheduler.add_job("a", "x", job_id="same-id") is first
    with pytest.raises(JobConflictError, match="another content"):
        scheduler.add_job("a", "other", job_id="same-id")
    with pytest.raises(JobValidationError, match="job_id"):
        scheduler.add_job("a", "x", job_id="not/an/id")
