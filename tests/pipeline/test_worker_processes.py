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

from services.pipeline.definition import StateSpec
from services.pipeline.errors import HeartbeatTimeout
from services.pipeline.providers import sample_chapter
from services.pipeline.task_tokens import LocalTransport, mint_token
from services.pipeline.worker_stages import wait_stage

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
    with pytest.raises(HeartbeatTimeout, match="no heartbeat for 1 s"):
        await wait(event, None)
    for _ in range(100):
        if not alive(silent.pid):
            break
        time.sleep(0.05)
    assert not alive(silent.pid)
    assert not (tmp_path / "tasks" / token).exists()


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
