"""Real worker processes: a silent worker is killed on States.HeartbeatTimeout, and a daemon
killed with -9 during the render resumes at the render without redoing earlier states."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.pipeline.engine.definition import StateSpec
from services.pipeline.errors import HeartbeatTimeout, TaskFailed
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages.worker_stages import wait_stage
from services.pipeline.tasks.subprocess_transport import SubprocessTransport
from services.pipeline.tasks.task_tokens import LocalTransport, mint_token

from .stage_context import RecordingContext

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, str(ROOT / "run_scheduler.py")]


def alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        finished = pid
    return finished == 0


async def test_a_worker_without_heartbeats_is_killed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    token = mint_token()
    LocalTransport(tmp_path / "tasks").open(token)
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    spec = StateSpec.model_validate(
        {"Type": "Task", "Next": "Done", "TimeoutSeconds": 30, "HeartbeatSeconds": 1}
    )
    wait = wait_stage(spec, poll=0.05)
    started = datetime.now(timezone.utc).isoformat()
    event = {
        "job_id": "job-1",
        "task_token": token,
        "started_at": started,
        "instance_id": f"pid-{silent.pid}",
    }
    SubprocessTransport(tmp_path).record_worker(token, silent.pid)
    with pytest.raises(HeartbeatTimeout, match="no heartbeat for 1 s"):
        await wait(event, RecordingContext())
    for _ in range(100):
        if not alive(silent.pid):
            break
        time.sleep(0.05)
    assert not alive(silent.pid)
    assert not (tmp_path / "tasks" / token).exists()


async def test_a_worker_that_exits_without_reporting_fails_the_wait_at_once(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    token = mint_token()
    transport = LocalTransport(tmp_path / "tasks")
    transport.open(token)
    (transport.task_dir(token) / "worker.log").write_text("Traceback ...\nImportError: no module x\n")
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    spec = StateSpec.model_validate(
        {"Type": "Task", "Next": "Done", "TimeoutSeconds": 3600, "HeartbeatSeconds": 300}
    )
    event = {
        "job_id": "job-1",
        "task_token": token,
        "started_at": datetime.now(timezone.utc).isoformat(),
        "instance_id": f"pid-{crashed.pid}",
    }
    SubprocessTransport(tmp_path).record_worker(token, crashed.pid)
    began = time.monotonic()
    with pytest.raises(TaskFailed, match=r"exited \(exit code 3\).*ImportError: no module x"):
        await wait_stage(spec, poll=0.05)(event, RecordingContext())
    assert time.monotonic() - began < 30  # not HeartbeatSeconds (300 s)
    assert not (tmp_path / "tasks" / token).exists()


async def test_a_worker_that_reports_and_exits_at_once_is_a_success(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    spec = StateSpec.model_validate(
        {"Type": "Task", "Next": "Done", "TimeoutSeconds": 3600, "HeartbeatSeconds": 300}
    )
    report_and_exit = (
        "import sys; from datetime import datetime, timezone;"
        "from services.pipeline.tasks.task_tokens import LocalTransport;"
        "LocalTransport(sys.argv[1]).succeed(sys.argv[2], {'video_id': 'v1'}, datetime.now(timezone.utc))"
    )
    for _ in range(5):  # the exit may be seen before or after the result: never a failure
        token = mint_token()
        LocalTransport(tmp_path / "tasks").open(token)
        worker = subprocess.Popen(
            [sys.executable, "-c", report_and_exit, str(tmp_path / "tasks"), token],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        event = {
            "job_id": "job-1",
            "task_token": token,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "instance_id": f"pid-{worker.pid}",
        }
        SubprocessTransport(tmp_path).record_worker(token, worker.pid)
        assert await wait_stage(spec, poll=0.01)(event, RecordingContext()) == {"video_id": "v1"}


def test_tokens_never_start_with_a_dash() -> None:
    tokens = {mint_token() for _ in range(2000)}  # 1 in 64 of token_urlsafe starts with "-"
    assert len(tokens) == 2000
    assert all(token[0].isalpha() and len(token) >= 32 for token in tokens)


def test_the_worker_takes_a_token_that_starts_with_a_dash(tmp_path: Path) -> None:
    # tokens minted before the fix may start with "-"; a resumed StartRenderer's retry
    # mints a new one, but the worker's command line must take either
    token = "-88yWV_1E_OYjfhiugFI9Vub1BDUFeKu"
    transport = LocalTransport(tmp_path / "tasks")
    transport.open(token)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable, "-m", "services.pipeline.tasks.worker", "render", "--job=job-x", f"--token={token}",
            f"--data-dir={tmp_path}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "expected one argument" not in done.stderr
    report = transport.report(token)
    assert report.result is not None  # it ran and reported (a failure: job-x has no work folder)
    assert report.result["status"] == "failed"


async def test_start_and_wait_take_and_give_the_seeds_json(tmp_path: Path, monkeypatch) -> None:
    from services.pipeline.stages import fetcher, scriptgen, ttsgen
    from services.pipeline.stages.worker_stages import start_stage

    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("VIDEO_FORMAT", "landscape")
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    sample_chapter.make_chapter(data_dir / "samples", panels=2)
    job_id = fetcher.handler({}, RecordingContext())["job_id"]
    scriptgen.handler({"job_id": job_id}, RecordingContext())
    ttsgen.handler({"job_id": job_id}, RecordingContext())
    spec = StateSpec.model_validate(
        {"Type": "Task", "Next": "Done", "TimeoutSeconds": 600, "HeartbeatSeconds": 300}
    )
    for task, done_keys in (
        ("render", {"job_id", "status"}),
        ("upload", {"job_id", "youtube_url", "status"}),
    ):
        seed_input = {"job_id": job_id, "task_token": f"AQCEAAAAKgAAAA{task}"}  # stage-functions.md
        started = start_stage(task, 300)(seed_input, RecordingContext())
        # the seed's output keys, plus what WaitFor* needs to find the worker again
        assert {"job_id", "instance_id", "instance_type", "spot_request_id"} <= set(started)
        assert started["job_id"] == job_id and started["task_token"] == seed_input["task_token"]
        assert (started["instance_type"], started["spot_request_id"]) == ("local", None)
        assert started["instance_id"].startswith("pid-")
        finished = await wait_stage(spec, poll=0.05)(started, RecordingContext())
        assert done_keys <= set(finished) and finished["job_id"] == job_id
        assert finished["status"] == "completed", finished
    assert list((data_dir / "published").rglob(f"{job_id}.mp4"))


def read_job(data_dir: Path) -> dict:
    for path in sorted((data_dir / "jobs").glob("jobs_*.json")):
        jobs = json.loads(path.read_text(encoding="utf-8"))["jobs"]
        for job in jobs.values():
            if job.get("kind") == "pipeline.video":
                return job
    return {}


def test_a_daemon_killed_during_the_render_resumes_at_the_render(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sample_chapter.make_chapter(data_dir / "samples", panels=6)
    env = {**os.environ, "DATA_DIR": str(data_dir), "API_PORT": "0", "VIDEO_FORMAT": "landscape"}
    env.pop("DAILY_QUOTA", None)
    added = subprocess.run(
        [*CLI, "add-job", "--account", "a", "--content", "next"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = added.stdout.strip()
    daemon = subprocess.Popen([*CLI, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while read_job(data_dir).get("stage") != "rendering" or "StartRenderer" not in (
            read_job(data_dir).get("pipeline") or {}
        ).get("outputs", {}):
            assert time.monotonic() < deadline, "the job never reached the render"
            assert daemon.poll() is None
            time.sleep(0.05)
        speech = data_dir / "work" / job_id / "audio" / "seg-001.wav"
        tts_made = speech.stat().st_mtime_ns
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
    finally:
        if daemon.poll() is None:
            daemon.kill()
    at_kill = read_job(data_dir)
    assert at_kill["pipeline"]["state"] == "WaitForRender"
    again = subprocess.Popen(
        [*CLI, "run", "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = again.communicate(timeout=180)
    assert again.returncode == 0, out[-2000:]
    job = read_job(data_dir)
    assert job["status"] == "completed" and job["stage"] == "completed", job.get("error")
    started_states = [
        json.loads(line).get("stage")
        for line in out.splitlines()
        if line.startswith("{") and '"state started"' in line
    ]
    # the restarted daemon ran no state before the render: no second fetch, script or TTS
    assert started_states[0] == "WaitForRender", started_states
    assert "GenerateTTS" not in started_states
    published = list((data_dir / "published").rglob(f"{job_id}.mp4"))
    assert len(published) == 1
    assert not (data_dir / "work" / job_id).exists() and tts_made
