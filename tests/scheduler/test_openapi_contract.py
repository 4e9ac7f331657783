"""The OpenAPI document tells the truth: schemathesis, run against a real daemon, finds nothing.

``test_schemathesis_finds_no_failure_on_any_route`` starts ``run_scheduler.py run`` (API_PORT=0)
on a temp data dir and runs the schemathesis CLI over every operation ``/openapi.json``
lists, with all its checks: undocumented statuses, bodies that break the response
schemas, valid requests refused, invalid ones accepted, the Allow header of a 405,
requests without the token, and any 5xx. The others hold the pieces in-process: the
create body's patterns read values as ``NewJob`` does, 401 and 422 are documented with
the one error body on every route, and a wrong method or a body FastAPI cannot parse
answers as the document says.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from services.scheduler.api import create_app
from services.scheduler.api_models import (
    ACCOUNT_ID_SCHEMA,
    PRIORITY_SCHEMA,
    instant_schema,
    new_job_body_schema,
    text_schema,
)
from services.scheduler.api_token import read_token
from services.scheduler.clock import load_timezone, parse_instant
from services.scheduler.errors import JobValidationError
from services.scheduler.lock import read_holder
from services.scheduler.models import CONTENT_MAX_CHARS, JobPriority, check_schedule_window
from services.scheduler.new_job import NewJob
from services.scheduler.scheduler import Scheduler

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
TOKEN = "contract-token"
MAX_EXAMPLES = 25
"""Cases per operation in the fuzzing phase; the coverage phase adds its boundary cases."""


# -- the whole API, against a real daemon ------------------------------------------------------


def _start_daemon(data_dir: Path) -> subprocess.Popen[str]:
    # no scheduler config (webhooks, http.post targets): the jobs schemathesis makes reach no network
    env = {
        **os.environ, "API_PORT": "0", "PYTHONPATH": str(ROOT),
        "SCHEDULER_CONFIG": str(data_dir.parent / "no-scheduler-config.toml"),
    }
    env.pop("DATA_DIR", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_scheduler.py"), "run", "--data-dir", str(data_dir)],
        env=env, cwd=data_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], data_dir: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = read_holder(data_dir) if data_dir.exists() else None
        if holder and holder.get("ready") and holder.get("pid") == proc.pid:
            return int(holder["api_port"])
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("daemon did not become ready")


def _operations(document: dict) -> list[str]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return [f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item if m in methods]


SEMANTIC_422 = r"""
# A schedule's create and update bodies have rules JSON Schema cannot state: which timing
# field goes with which schedule_type, the cron grammar, a first fire within
# MAX_SCHEDULE_LOOKAHEAD_DAYS, a run_at not in the past, a command_payload that fits its
# target_command's model. The server answers those with the documented 422 naming the
# field; every other check (and every other route) keeps schemathesis' defaults.
[[operations]]
include-path-regex = '^/api/v1/schedules(/\{schedule_id\})?$'
include-method-regex = '^(POST|PUT)$'
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path-regex = '^/api/v1/schedules/(bulk/create|\{schedule_id\}/backfill)$'
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]
"""
"""schemathesis' config for this run (``schemathesis.toml`` in its working folder)."""


def test_schemathesis_finds_no_failure_on_any_route(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = _start_daemon(data_dir)
    try:
        port = _wait_ready(proc, data_dir)
        base = f"http://127.0.0.1:{port}"
        operations = _operations(httpx.get(f"{base}/openapi.json", timeout=10).json())
        (tmp_path / "schemathesis.toml").write_text(SEMANTIC_422, encoding="utf-8")
        run = subprocess.run(
            [
                str(SCHEMATHESIS), "run", f"{base}/openapi.json",
                "--checks", "all",
                "-H", f"Authorization: Bearer {read_token(data_dir)}",
                "--max-examples", str(MAX_EXAMPLES),
                "--generation-deterministic",  # the same cases every run, no example database
                "--workers", "1",
                "--continue-on-failure",
                "--no-shrink",
                "--no-color",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=240,
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            log = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0]
    out = run.stdout + run.stderr
    cases = re.search(r"Test cases:\s*\n\s*(.+)", out)
    print(f"schemathesis over {len(operations)} operations: {cases.group(1) if cases else '?'}")
    failures = out[out.find("= FAILURES"):out.find("= SUMMARY")] if "= FAILURES" in out else out[-3000:]
    assert run.returncode == 0, failures[:8000]
    assert f"Tested: {len(operations)}" in out, out[-2000:]
    assert cases and " passed" in cases.group(1), out[-2000:]
    assert "API request failed" not in log  # the 500 handler logs each one


# -- the create body's schema reads values as NewJob does --------------------------------------


_VALIDATORS: dict[str, jsonschema_rs.Validator] = {}


def _valid(schema: dict, value: object) -> bool:
    key = json.dumps(schema, sort_keys=True)
    if key not in _VALIDATORS:  # a content pattern takes a quarter of a second to compile
        _VALIDATORS[key] = jsonschema_rs.Draft202012Validator(schema)
    return _VALIDATORS[key].is_valid(value)


def _accepts(**fields: object) -> bool:
    try:
        NewJob(**{"account_id": "a", "content": "x", **fields})
        return True
    except JobValidationError:
        return False


ACCOUNTS = [
    "a", "kênh-một", "  acc  ", "\u3000acc\u2028", "a.b_c-d@e+f", "x" * 64, "x" * 65, "", " ", "a b", "a\tb",
    "a\n", "\x1ca", "a\x85", "\x85a", "a/b", "a!", "١٢٣", "acc\x00", "\ufeffacc", "ß", "Ǆ",
]
CONTENTS = [
    "x", " x ", "x" * 500, " " * 40 + "x" * 500 + "\n", "x" * 501, "x" * 499 + "\r\n" + "x", "x\r\ny",
    "x\ry", "x\r", "\r\nx\r\n", "x\r\r\ny", "a\tb\nc", "", " \n\t", "\x1bx", "x\x7f", "x\x85y", "\x85x",
    "x\x1c", "\u2028x\u2029", "x\u00a0y", "chương 5",
]


@pytest.mark.parametrize("value", ACCOUNTS, ids=ascii)
def test_account_id_pattern_is_the_rule(value: str) -> None:
    assert _valid(ACCOUNT_ID_SCHEMA, value) == _accepts(account_id=value)


@pytest.mark.parametrize("value", CONTENTS, ids=lambda v: ascii(v)[:40])
def test_content_pattern_is_the_rule(value: str) -> None:
    assert _valid(text_schema(CONTENT_MAX_CHARS), value) == _accepts(content=value)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    # assigned characters only (the validator's Unicode may be newer than Python's), and in NFC:
    # NewJob counts and checks a text once composed (see api_models)
    st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=80).filter(
        lambda s: unicodedata.is_normalized("NFC", s)
    )
)
def test_text_patterns_agree_with_new_job_on_any_text(value: str) -> None:
    assert _valid(ACCOUNT_ID_SCHEMA, value) == _accepts(account_id=value)
    assert _valid(text_schema(CONTENT_MAX_CHARS), value) == _accepts(content=value)


@pytest.mark.parametrize(
    "value",
    [1, 2, 3, 4, 0, 5, -1, True, "low", "HIGH", " Urgent ", "normal\n", "hıgh", "3", "03", " 4 ", "5", "0",
     "", "hi", "high!", "1.0", None, [], 2.5],
    ids=ascii,
)
def test_priority_schema_is_the_rule(value: object) -> None:
    assert _valid(PRIORITY_SCHEMA, value) == _accepts(priority=value)


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _in_window(text: str, zone: str) -> bool:
    try:
        check_schedule_window(parse_instant(text, load_timezone(zone), now=NOW), NOW)
        return True
    except (ValueError, JobValidationError):
        return False


@pytest.mark.parametrize("zone", ["Asia/Ho_Chi_Minh", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_every_documented_instant_is_accepted(zone: str) -> None:
    schema = instant_schema(NOW)
    days = [NOW.date() + timedelta(days=n) for n in range(-370, 371)]
    documented = [d for d in days if _valid(schema, d.isoformat())]
    assert documented[0] > NOW.date() - timedelta(days=365) and documented[-1] < NOW.date() + timedelta(days=365)
    assert len(documented) > 700  # the window, but for its edges
    for day in (documented[0], documented[-1]):
        for text in (f"{day}", f"{day}T00:00", f"{day}T23:59:59.999999", f"{day}T00:00+23:59",
                     f"{day}T23:59-23:59", f"{day}T12:30:15Z", " now ", "NOW"):
            assert _valid(schema, text), text
            assert _in_window(text, zone), text
    for text in ("2026-02-29T10:00", f"{NOW.date()}T24:00", f"{NOW.date()}T10:60", "tomorrow", f"{NOW.date()}T10"):
        assert not _valid(schema, text), text


def test_body_schema_names_what_is_required_and_nothing_else() -> None:
    schema = new_job_body_schema(["log", "pipeline.video"], NOW)
    assert schema["required"] == ["account_id", "content"] and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(NewJob.model_fields)
    assert _valid(schema, {"account_id": "a", "content": "x", "kind": "log", "priority": "high", "max_retries": 0})
    for bad in ({"content": "x"}, {"account_id": "a", "content": "x", "kind": "shell"},
                {"account_id": "a", "content": "x", "command": "rm"}, {"account_id": "a", "content": "x", "max_retries": 101}):
        assert not _valid(schema, bad), bad


# -- the document and the app-level answers ----------------------------------------------------


@pytest.fixture
def app(data_dir: Path, clock):
    scheduler = Scheduler(data_dir, clock=clock)
    scheduler.load()
    return create_app(scheduler, TOKEN)


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Authorization": f"Bearer {TOKEN}"}
    )


def test_every_route_documents_its_errors_with_the_error_body(app) -> None:
    document = app.openapi()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": "the token in DATA_DIR/api_token",
    }
    assert "HTTPValidationError" not in json.dumps(document)  # FastAPI's 422 shape, which the API never answers
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            # the token is the security scheme, not a header parameter to fuzz
            assert all(p["name"].lower() != "authorization" for p in operation.get("parameters", []))
            secured = bool(operation.get("security"))
            if path.startswith("/api/"):
                assert secured, (method, path)
            if path in ("/health", "/ready", "/live", "/metrics"):  # probes and scrapers: no token
                assert not secured, (method, path)
            if secured:
                assert "401" in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and not path.startswith(("/ready", "/health")):
                    assert "ErrorBody" in json.dumps(response["content"]), (method, path, status)
    jobs = document["paths"]["/api/v1/jobs"]
    assert jobs["post"]["requestBody"]["required"] is True
    assert {"200", "201", "401", "409", "422", "507"} <= set(jobs["post"]["responses"])
    status = next(p for p in jobs["get"]["parameters"] if p["name"] == "status")
    assert "" not in status["schema"]["enum"] and "scheduled" in status["schema"]["enum"]
    assert {"404"} <= set(document["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"])


def test_the_document_follows_the_day(app, clock) -> None:
    today = app.openapi()["components"]["schemas"]["NewJobBody"]
    assert app.openapi()["components"]["schemas"]["NewJobBody"] is today  # built once a day
    clock.advance(days=40)
    later = app.openapi()["components"]["schemas"]["NewJobBody"]
    pattern = later["properties"]["scheduled_time"]["anyOf"][0]["pattern"]
    assert pattern != today["properties"]["scheduled_time"]["anyOf"][0]["pattern"]
    day = (clock.now + timedelta(days=340)).date().isoformat()  # 380 days after the first document's day
    assert re.search(pattern, day) and not re.search(today["properties"]["scheduled_time"]["anyOf"][0]["pattern"], day)


async def test_a_wrong_method_names_every_method_of_the_path(app) -> None:
    async with _client(app) as api:
        for method, path, allowed in (
            ("PUT", "/api/v1/jobs/x", "DELETE, GET"),
            ("OPTIONS", "/api/v1/jobs/x", "DELETE, GET"),
            ("DELETE", "/api/v1/jobs", "GET, POST"),
        ):
            answer = await api.request(method, path)
            assert answer.status_code == 405 and answer.headers["allow"] == allowed, (method, path)
            assert answer.json()["error"] == "method_not_allowed"


class Thing(BaseModel):
    """The body of a route FastAPI parses (the jobs route reads its own)."""

    count: int


async def test_a_body_fastapi_parses_is_refused_in_the_one_shape(app) -> None:
    @app.post("/probe")
    async def probe(thing: Thing) -> dict:
        return {"count": thing.count}

    json_type = {"Content-Type": "application/json"}
    async with _client(app) as api:
        cases = [
            (b"\xff{", "body", "body: is not valid UTF-8 (byte 0)"),
            (b"{", "body", "body: is not valid JSON: "),
            (b'{"count": "many"}', "count", "count: Input should be a valid integer"),
            (b"[1]", "body", "body: Input should be a valid dictionary"),
        ]
        for content, field, says in cases:
            answer = await api.post("/probe", content=content, headers=json_type)
            body = answer.json()
            assert answer.status_code == 422, (content, body)
            assert (body["error"], body["field"]) == ("invalid_request", field) and body["message"].startswith(says)
        assert (await api.post("/probe", json={"count": 2})).json() == {"count": 2}


async def test_an_integral_json_number_is_the_integer(app) -> None:
    async with _client(app) as api:
        answer = await api.post(
            "/api/v1/jobs", content=b'{"account_id": "a", "content": "x", "priority": 3.0, "max_retries": 5e0}',
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 201, answer.text
        assert (answer.json()["priority"], answer.json()["max_retries"]) == (int(JobPriority.HIGH), 5)
        refused = await api.post("/api/v1/jobs", json={"account_id": "a", "content": "x", "max_retries": 2.5})
        assert refused.status_code == 422 and refused.json()["field"] == "max_retries"
