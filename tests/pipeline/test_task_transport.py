"""The TaskTransport seam: transports found by file, chosen by TASK_TRANSPORT, and the
Start*/WaitFor* stages speaking only the protocol (no "pid-…" parsing)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.pipeline import tasks
from services.pipeline.engine.definition import StateSpec
from services.pipeline.settings import EMBEDDED_VALUES, PipelineSettings, load_settings
from services.pipeline.stages.worker_stages import start_stage, wait_stage
from services.pipeline.tasks import transport as transport_module
from services.pipeline.tasks.subprocess_transport import SubprocessTransport
from services.pipeline.tasks.task_tokens import mint_token
from services.pipeline.tasks.transport import transport_for, transport_names
from services.scheduler.settings import SettingsError

from .stage_context import RecordingContext

SPEC = StateSpec.model_validate({"Type": "Task", "Next": "Done", "TimeoutSeconds": 60, "HeartbeatSeconds": 10})

FAKE = '''
"""A transport that runs nothing: the test plays the worker through ``WORKERS``."""
from datetime import datetime, timezone

WORKERS = {}


class MemoryTransport:
    name = "memory"

    def __init__(self, data_dir, settings=None):
        self.data_dir = data_dir

    def start(self, token, task, *, heartbeat_seconds):
        WORKERS[token] = {"task": task, "beat": datetime.now(timezone.utc), "result": None, "ended": False}
        return {"instance_id": "mem-1", "instance_type": "memory", "spot_request_id": None}

    def heartbeat(self, token):
        return WORKERS[token]["beat"]

    def result(self, token):
        return WORKERS[token]["result"]

    def alive(self, token):
        return None

    def log_tail(self, token):
        return "no log"

    def end(self, token, *, kill):
        WORKERS[token]["ended"] = True


TRANSPORT = MemoryTransport
'''


@pytest.fixture
def memory_transport(tmp_path: Path, monkeypatch):
    """A ``memory_transport.py`` dropped beside the local one (as the Spot one will be)."""
    folder = tmp_path / "more_tasks"
    folder.mkdir()
    (folder / "memory_transport.py").write_text(textwrap.dedent(FAKE))
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(folder)])
    transport_module._registry.cache_clear()
    yield
    transport_module._registry.cache_clear()
    sys.modules.pop("services.pipeline.tasks.memory_transport", None)


def test_the_local_and_spot_transports_are_built_in() -> None:
    assert transport_names() == ["local", "spot"]
    assert isinstance(transport_for("local", Path("data")), SubprocessTransport)
    with pytest.raises(ValueError, match="TASK_TRANSPORT must be one of local, spot, got 'pigeon'"):
        transport_for("pigeon", Path("data"))
    with pytest.raises(ValueError, match="the spot transport needs the pipeline settings"):
        transport_for("spot", Path("data"))


def test_an_unknown_transport_in_the_settings_is_named(settings_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TASK_TRANSPORT", "carrier-pigeon")
    with pytest.raises(SettingsError, match="TASK_TRANSPORT must be one of local, spot, got 'carrier-pigeon'"):
        load_settings()


def test_a_new_transport_is_one_file_beside_the_local_one(memory_transport, tmp_path: Path) -> None:
    assert transport_names() == ["local", "memory", "spot"]
    settings = PipelineSettings.from_values({**EMBEDDED_VALUES, "task_transport": "memory"})
    context = RecordingContext(data_dir=tmp_path, settings=settings)
    token = mint_token()
    started = start_stage("render", 300)({"job_id": "job-1", "task_token": token}, context)
    assert (started["instance_id"], started["instance_type"]) == ("mem-1", "memory")
    workers = sys.modules["services.pipeline.tasks.memory_transport"].WORKERS
    handed = workers[token]["task"]
    assert handed["job_id"] == "job-1" and handed["settings"]["task_transport"] == "memory"
    assert "openai_api_key" not in handed["settings"]  # no secret leaves for a worker
    workers[token]["result"] = {"status": "succeeded", "output": {"video": "v.mp4"}}

    assert asyncio.run(wait_stage(SPEC, poll=0.01)(started, context)) == {"video": "v.mp4"}
    assert workers[token]["ended"] is True
    assert not (tmp_path / "tasks").exists()  # the local transport was never asked


def test_a_task_without_a_recorded_worker_is_lost_not_parsed_from_its_instance_id(tmp_path: Path) -> None:
    transport = SubprocessTransport(tmp_path)
    token = mint_token()
    transport.files.open(token)
    ended = transport.alive(token)  # the instance_id "pid-1" of an event is never read
    assert ended is not None and ended.lost and "no process was recorded" in ended.how
    transport.record_worker(token, 999_999_999)
    ended = transport.alive(token)
    assert ended is not None and ended.lost and "pid 999999999" in ended.how
    transport.end(token, kill=False)
    assert not transport.files.task_dir(token).exists()


def test_the_start_output_keeps_the_seeds_shape(tmp_path: Path) -> None:
    context = RecordingContext(data_dir=tmp_path, settings=PipelineSettings.embedded())
    started = start_stage("render", 300, clock=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc),
                          timeout_seconds=7200)({"job_id": "job-x"}, context)
    try:
        assert set(started) == {
            "job_id", "instance_id", "instance_type", "spot_request_id", "task_token", "started_at",
        }
        assert started["instance_type"] == "local" and started["instance_id"].startswith("pid-")
        task = SubprocessTransport(tmp_path).files.read_task(started["task_token"])
        assert task["version"] == 1 and task["data_dir"] == str(tmp_path.resolve())
        assert task["timeout_seconds"] == 7200  # the WaitFor* state's: a Spot instance's own deadline
    finally:
        SubprocessTransport(tmp_path).end(started["task_token"], kill=True)
