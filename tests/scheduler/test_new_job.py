"""NewJob: the one record of a create, shared by the CLI, the API, the daemon client and the
manager; its checks name the field with the stored record's rules."""

from __future__ import annotations

import inspect
import json
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError as PydanticValidationError

from services.scheduler.api import JOB_FIELDS, create_app
from services.scheduler.clock import utc_now
from services.scheduler.daemon_client import DaemonClient
from services.scheduler.errors import JobValidationError
from services.scheduler.handlers import HandlerRegistry
from services.scheduler.job_manager import JobManager
from services.scheduler.models import JobPriority
from services.scheduler.new_job import NewJob
from services.scheduler.scheduler import Scheduler

SEVEN = ["account_id", "content", "scheduled_time", "priority", "max_retries", "kind", "job_id"]
WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)


def test_the_seven_arguments_are_the_models_fields() -> None:
    assert set(NewJob.model_fields) == set(SEVEN) == JOB_FIELDS
    for add_job in (JobManager.add_job, JobManager.add_job_async, Scheduler.add_job, Scheduler.add_job_async,
                    DaemonClient.add_job):
        assert list(inspect.signature(add_job).parameters)[1:] == SEVEN, add_job.__qualname__


def test_defaults_and_what_the_fields_become() -> None:
    new = NewJob(account_id=" kênh ", content=" Chương 1 ", priority="urgent")
    assert (new.account_id, new.content, new.priority, new.max_retries) == ("kênh", "Chương 1", JobPriority.URGENT, 3)
    assert new.kind is None and new.scheduled_time is None and new.job_id is None
    decomposed = unicodedata.normalize("NFD", "Tiếng Việt")
    assert NewJob(account_id="a", content=decomposed).content == "Tiếng Việt"  # stored in NFC


def test_it_is_frozen() -> None:
    new = NewJob(account_id="a", content="x")
    with pytest.raises(PydanticValidationError):
        new.content = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"content": "x"}, "account_id: is required"),
        ({"account_id": None, "content": "x"}, "account_id: must be a string"),
        ({"account_id": "a b", "content": "x"},
         "account_id: may hold only letters, digits, '.', '_', '-', '@' and '+' (got 'a b')"),
        ({"account_id": "a" * 65, "content": "x"}, "account_id: must be at most 64 characters (got 65)"),
        ({"account_id": "a", "content": " "}, "content: must be a non-empty string"),
        ({"account_id": "a", "content": "x" * 501}, "content: must be at most 500 characters (got 501)"),
        ({"account_id": "a", "content": "x\x1b[2J"},
         "content: must not contain control characters (ESC, NUL, ...; newlines and tabs are fine)"),
        ({"account_id": "a", "content": "x", "kind": ""}, "kind: must be a non-empty string"),
        ({"account_id": "a", "content": "x", "scheduled_time": datetime(2026, 1, 1)},
         "scheduled_time: must include a UTC offset (naive times are ambiguous)"),
        ({"account_id": "a", "content": "x", "priority": 5}, "priority: must be low, normal, high, urgent or 1..4"),
        ({"account_id": "a", "content": "x", "max_retries": "3"}, "max_retries: must be an integer >= 0"),
        ({"account_id": "a", "content": "x", "max_retries": 101}, "max_retries: must be an integer from 0 to 100"),
        ({"account_id": "a", "content": "x", "job_id": "not/an/id"},
         "job_id: must be 1-64 letters, digits, '-' or '_', starting with a letter or digit (got 'not/an/id')"),
        ({"account_id": "a", "content": "x", "colour": "red"}, "colour: extra inputs are not permitted"),
        # several bad fields: the first in the order the manager always checked them
        ({"account_id": "a b", "content": "", "job_id": "bad/id"}, "account_id: may hold only"),
        ({"account_id": "", "content": "", "job_id": "bad/id"}, "job_id: must be 1-64"),
        ({"account_id": "a", "content": "", "kind": "", "priority": 9}, "content: must be a non-empty string"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value.split(":")[0],
)
def test_a_bad_field_is_named_with_its_rule(fields: dict, message: str) -> None:
    with pytest.raises(JobValidationError) as caught:
        NewJob(**fields)
    assert caught.value.message.startswith(message)
    assert caught.value.field == message.split(":")[0]


def test_the_body_leaves_out_what_is_unset() -> None:
    assert NewJob(account_id="a", content="x").to_body() == {
        "account_id": "a", "content": "x", "priority": 2, "max_retries": 3,
    }
    full = NewJob(account_id="a", content="x", scheduled_time=WHEN, priority="high", max_retries=0, kind="log",
                  job_id="job-1")
    assert full.to_body() == {
        "job_id": "job-1", "account_id": "a", "content": "x", "kind": "log",
        "scheduled_time": "2026-11-24T01:00:00+00:00", "priority": 3, "max_retries": 0,
    }


def test_the_daemon_client_sends_the_body_and_the_id_as_idempotency_key() -> None:
    sent: list[httpx.Request] = []
    new = NewJob(account_id="a", content="x", scheduled_time=WHEN, kind="log", job_id="job-1")

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        job = {**json.loads(request.content), "scheduled_time": WHEN.isoformat(), "warnings": ["w"]}
        return httpx.Response(201, json=job)

    client = DaemonClient(1, "t", transport=httpx.MockTransport(answer))
    job = client.add(new)
    assert json.loads(sent[0].content) == new.to_body()
    assert sent[0].headers["Idempotency-Key"] == "job-1"
    assert (job.job_id, job.account_id, job.scheduled_time) == ("job-1", "a", WHEN)
    client.add_job("a", "x", WHEN, kind="log", job_id="job-1")  # the wrapper sends the same
    assert sent[1].content == sent[0].content


async def test_the_body_through_the_api_makes_the_job_it_describes(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir)
    scheduler.load()
    when = (utc_now() + timedelta(hours=2)).replace(microsecond=0)
    new = NewJob(account_id="kênh", content="Chương 2", scheduled_time=when, priority="low", max_retries=1,
                 job_id="chapter-2")
    transport = httpx.ASGITransport(app=create_app(scheduler, "t"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": "Bearer t"}) as api:
        answer = await api.post("/api/v1/jobs", json=new.to_body())
    assert answer.status_code == 201
    job = scheduler.get_job("chapter-2")
    assert {name: getattr(job, name) for name in SEVEN} == {**new.model_dump(), "kind": "log"}


def test_the_scheduler_fills_in_its_default_kind(data_dir: Path) -> None:
    async def nothing(job) -> None:
        return None

    registry = HandlerRegistry()
    for kind in ("log", "video"):
        registry.register(kind, nothing)
    scheduler = Scheduler(data_dir, registry=registry)
    scheduler.load()
    scheduler.default_kind = "video"
    assert scheduler.add(NewJob(account_id="a", content="x")).kind == "video"
    assert scheduler.add(NewJob(account_id="a", content="x", kind="log")).kind == "log"
    with pytest.raises(JobValidationError, match="^kind: must be one of: log, video$"):
        scheduler.add(NewJob(account_id="a", content="x", kind="other"))
