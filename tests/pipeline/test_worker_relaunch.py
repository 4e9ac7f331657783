"""A worker lost without a result (killed by a signal, its pid gone after a restart or a
reboot) is relaunched at its Start* state: no retry spent, no delay, no earlier state run
again, bounded per state per video. One that exited with a code is still States.TaskFailed.

The last test kills a real daemon and its real render worker the way systemd's
KillMode=control-group does (every process of the unit's cgroup) and restarts the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.pipeline.engine.definition import StateSpec, load_definition
from services.pipeline.engine.machine import Checkpoint
from services.pipeline.engine.policy import (
    MAX_RELAUNCHES,
    Catch,
    Relaunch,
    matches,
    on_error,
    on_lost_worker,
)
from services.pipeline.errors import (
    ALL,
    HEARTBEAT_TIMEOUT,
    TASK_FAILED,
    WORKER_LOST,
    HeartbeatTimeout,
    TaskFailed,
    WorkerLost,
    error_name,
)
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages.worker_stages import wait_stage
from services.pipeline.tasks.subprocess_transport import SubprocessTransport
from services.pipeline.tasks.task_tokens import LocalTransport, mint_token
from tests.pipeline.conftest import PIPELINE_ENV
from tests.pipeline.test_machine import VIDEO_PATH, Clock, Stages, machine

from .stage_context import RecordingContext

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, str(ROOT / "run_scheduler.py")]
DEFINITION = load_definition()
SPEC = StateSpec.model_validate(
    {"Type": "Task", "Next": "Done", "TimeoutSeconds": 3600, "HeartbeatSeconds": 300}
)


# -- the pure decision ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "name", "relaunched", "expected"),
    [
        ("WaitForRender", WORKER_LOST, 0, Relaunch("StartRenderer", 1)),
        ("WaitForRender", WORKER_LOST, 1, Relaunch("StartRenderer", 2)),
        ("WaitForRender", WORKER_LOST, 2, Relaunch("StartRenderer", 3)),
        ("WaitForRender", WORKER_LOST, 3, None),  # spent: an ordinary error from now on
        ("WaitForRender", WORKER_LOST, 7, None),
        ("WaitForUpload", WORKER_LOST, 0, Relaunch("StartUploader", 1)),
        ("WaitForUpload", WORKER_LOST, 3, None),
        ("WaitForRender", TASK_FAILED, 0, None),  # the worker exited with a code
        ("WaitForRender", "RenderError", 0, None),  # the worker reported a failure
        ("WaitForRender", HEARTBEAT_TIMEOUT, 0, None),  # stuck, not lost: Retry decides
        ("WaitForUpload", "YouTubeQuotaError", 0, None),
        ("StartRenderer", WORKER_LOST, 0, None),  # only a WaitFor* has a worker to relaunch
        ("GenerateTTS", WORKER_LOST, 0, None),
    ],
)
def test_which_errors_relaunch_the_worker(state, name, relaunched, expected) -> None:
    assert on_lost_worker(DEFINITION.state(state), name, relaunched) == expected


def test_the_relaunch_bound() -> None:
    assert MAX_RELAUNCHES == 3
    wait = DEFINITION.state("WaitForRender")
    assert on_lost_worker(wait, WORKER_LOST, 1, limit=1) is None
    assert on_lost_worker(wait, WORKER_LOST, 0, limit=0) is None


def test_past_the_bound_a_lost_worker_is_an_ordinary_error() -> None:
    assert error_name(WorkerLost("x")) == WORKER_LOST
    assert matches([ALL], WORKER_LOST) and matches([TASK_FAILED], WORKER_LOST)
    # WaitForRender retries only timeouts, so its catch-all takes the video to HandleError
    decision = on_error(DEFINITION.state("WaitForRender"), WORKER_LOST, "gone", [0])
    assert decision == Catch(next_state="HandleError", error=WORKER_LOST, cause="gone")


def test_a_checkpoint_saved_before_relaunches_existed_still_loads() -> None:
    old = {
        "state": "WaitForRender",
        "loop": False,
        "manga": "next",
        "account_id": "a",
        "video_job_id": "job-1",
        "outputs": {"StartRenderer": {"task_token": "t1", "instance_id": "pid-1"}},
        "attempts": {},
        "retry_at": None,
        "error": None,
        "videos": [],
    }
    assert Checkpoint.model_validate(old).relaunches == {}


# -- the machine, with stand-in stages ------------------------------------------------------


async def test_a_lost_worker_is_relaunched_at_once_without_spending_a_retry(caplog) -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["WaitForRender"] = [WorkerLost("the worker was killed by signal 9 (SIGKILL)")]
    with caplog.at_level(logging.WARNING, logger="services.pipeline.engine.machine"):
        done = await machine(stages, clock, saved).run(Checkpoint())
    assert done.state == "Done" and done.error is None
    assert stages.calls == VIDEO_PATH[:6] + ["StartRenderer", "WaitForRender"] + VIDEO_PATH[6:]
    assert clock.slept == []  # no retry delay
    assert done.relaunches == {"WaitForRender": 1}
    assert "WaitForRender" not in done.attempts
    assert done.outputs["WaitForRender"]["task_token"] == "tok-2"  # the new worker's
    assert done.videos == [{"job_id": "job-1", "outcome": "published"}]
    after_loss = saved[[s["state"] for s in saved].index("WaitForRender") + 1]  # the save after the loss
    assert after_loss["state"] == "StartRenderer" and after_loss["retry_at"] is None
    assert "StartRenderer" not in after_loss["outputs"] and after_loss["attempts"] == {}
    assert after_loss["relaunches"] == {"WaitForRender": 1}
    (line,) = [r for r in caplog.records if r.getMessage() == "worker lost; relaunching"]
    assert (line.job_id, line.stage, line.relaunch) == ("job-1", "WaitForRender", 1)


async def test_a_worker_lost_every_time_fails_after_three_relaunches() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["WaitForUpload"] = [WorkerLost("gone")] * (MAX_RELAUNCHES + 1)
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert stages.calls.count("StartUploader") == MAX_RELAUNCHES + 1
    assert stages.calls.count("WaitForRender") == 1  # the render is not redone
    assert done.error == {"Error": WORKER_LOST, "Cause": "gone", "state": "WaitForUpload"}
    assert done.videos == [{"job_id": "job-1", "outcome": "failed"}]
    assert stages.calls[-1] == "HandleError"


async def test_a_relaunch_leaves_the_states_retries_for_a_stuck_worker() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["WaitForRender"] = [
        WorkerLost("gone"),
        HeartbeatTimeout("no heartbeat for 300 s"),
        WorkerLost("gone"),
        HeartbeatTimeout("no heartbeat for 300 s"),
    ]
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert done.state == "Done" and done.error is None
    assert clock.slept == [30.0, 60.0]  # the two heartbeat retries' delays, nothing for the losses
    assert done.relaunches == {"WaitForRender": 2}
    assert stages.calls.count("StartRenderer") == 5


async def test_the_relaunch_bound_counts_per_video() -> None:
    stages, clock, saved = Stages(quota=2), Clock(), []
    lost: dict[str, int] = {}

    def render(event, context):  # every video's worker is lost three times, then renders
        stages.calls.append("WaitForRender")
        lost[event["job_id"]] = lost.get(event["job_id"], 0) + 1
        if lost[event["job_id"]] <= MAX_RELAUNCHES:
            raise WorkerLost("gone")
        return {"job_id": event["job_id"], "status": "completed"}

    done = await machine(stages, clock, saved, WaitForRender=render).run(Checkpoint(loop=True))
    assert [v["outcome"] for v in done.videos] == ["published", "published"]
    assert lost == {"job-1": 4, "job-2": 4}
    assert done.relaunches == {"WaitForRender": 3}  # the second video's, counted from 0


# -- wait_stage on real processes -----------------------------------------------------------


def start_event(pid: int, token: str) -> dict:
    """The StartRenderer output for a worker ``pid`` (recorded as the task's, as ``start`` does)."""
    SubprocessTransport(os.environ["DATA_DIR"]).record_worker(token, pid)
    return {
        "job_id": "job-1",
        "task_token": token,
        "started_at": datetime.now(timezone.utc).isoformat(),
        "instance_id": f"pid-{pid}",
    }


def open_task(tmp_path: Path, monkeypatch, log: str = "") -> tuple[LocalTransport, str]:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    transport, token = LocalTransport(tmp_path / "tasks"), mint_token()
    transport.open(token)
    (transport.task_dir(token) / "worker.log").write_text(log)
    return transport, token


def not_our_child(argv: list[str]) -> int:
    """Start ``argv`` as a process that is not this one's child (as a worker is not a
    restarted daemon's); its pid."""
    launcher = (
        "import subprocess, sys;"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL, start_new_session=True); print(p.pid)"
    )
    started = subprocess.run(
        [sys.executable, "-c", launcher, *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(started.stdout)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def test_a_worker_killed_by_a_signal_is_lost_and_its_children_go_with_it(
    tmp_path: Path, monkeypatch
) -> None:
    _, token = open_task(tmp_path, monkeypatch, "rendering panel 7 of 40\n")
    child_pid_file = tmp_path / "ffmpeg.pid"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time;"
            "p = subprocess.Popen(['sleep', '60']);"  # stands for the worker's ffmpeg
            "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(60)",
            str(child_pid_file),
        ],
        start_new_session=True,
    )
    for _ in range(200):
        if child_pid_file.exists() and child_pid_file.read_text():
            break
        time.sleep(0.05)
    leftover = int(child_pid_file.read_text())
    try:
        os.kill(worker.pid, signal.SIGKILL)  # the OOM killer, or systemd's control-group stop
        began = time.monotonic()
        with pytest.raises(WorkerLost, match=r"killed by signal 9 \(SIGKILL\).*rendering panel 7") as lost:
            await wait_stage(SPEC, poll=0.05)(start_event(worker.pid, token), RecordingContext())
        assert time.monotonic() - began < 30  # not HeartbeatSeconds
        assert lost.value.name == WORKER_LOST
        assert not (tmp_path / "tasks" / token).exists()
        for _ in range(100):
            if not running(leftover):
                break
            time.sleep(0.05)
        assert not running(leftover)  # the new worker will not share the files with it
    finally:
        end(leftover)
        end(worker.pid)


async def test_a_worker_that_exits_with_code_2_without_a_result_still_fails(
    tmp_path: Path, monkeypatch
) -> None:
    _, token = open_task(tmp_path, monkeypatch, "usage: worker ...\nerror: bad arguments\n")
    worker = subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"], start_new_session=True)
    with pytest.raises(TaskFailed, match=r"exited \(exit code 2\).*bad arguments") as failed:
        await wait_stage(SPEC, poll=0.05)(start_event(worker.pid, token), RecordingContext())
    assert type(failed.value) is TaskFailed and failed.value.name == TASK_FAILED
    assert not (tmp_path / "tasks" / token).exists()


async def test_a_worker_whose_pid_is_gone_after_a_daemon_restart_is_lost(tmp_path: Path, monkeypatch) -> None:
    _, token = open_task(tmp_path, monkeypatch)
    pid = not_our_child([sys.executable, "-c", "import time; time.sleep(60)", f"--token={token}"])
    os.kill(pid, signal.SIGKILL)  # now gone, or a zombie nobody reaps: either way no worker
    for _ in range(100):
        if not running(pid):
            break
        time.sleep(0.05)
    with pytest.raises(WorkerLost, match=rf"is gone \(pid {pid} "):
        await wait_stage(SPEC, poll=0.05)(start_event(pid, token), RecordingContext())


async def test_a_reused_pid_is_not_our_worker_and_is_left_alone(tmp_path: Path, monkeypatch) -> None:
    _, token = open_task(tmp_path, monkeypatch)
    stranger = not_our_child(["sleep", "60"])  # e.g. after a reboot the pid is someone else's
    try:
        with pytest.raises(WorkerLost, match=rf"pid {stranger} is another program now"):
            await wait_stage(SPEC, poll=0.05)(start_event(stranger, token), RecordingContext())
        assert running(stranger)  # not killed: it is not ours
    finally:
        end(stranger)


async def test_a_live_worker_that_is_not_our_child_is_waited_for(tmp_path: Path, monkeypatch) -> None:
    # the worker of a daemon that restarted (KillMode=process): re-attached through its pid
    _, token = open_task(tmp_path, monkeypatch)
    report_later = (
        "import sys, time; from datetime import datetime, timezone;"
        "from services.pipeline.tasks.task_tokens import LocalTransport;"
        "time.sleep(1.5);"
        "LocalTransport(sys.argv[1]).succeed("
        "    sys.argv[2], {'status': 'completed'}, datetime.now(timezone.utc))"
    )
    pid = not_our_child(
        [sys.executable, "-c", report_later, str(tmp_path / "tasks"), token, f"--token={token}"]
    )
    try:
        assert await wait_stage(SPEC, poll=0.05)(start_event(pid, token), RecordingContext()) == {"status": "completed"}
    finally:
        end(pid)


# -- a real daemon and its render worker, killed as systemd kills a unit --------------------


def read_job(data_dir: Path) -> dict:
    for path in sorted((data_dir / "jobs").glob("jobs_*.json")):
        for job in json.loads(path.read_text(encoding="utf-8"))["jobs"].values():
            if job.get("kind") == "pipeline.video":
                return job
    return {}


class Unit:
    """A stand-in for a systemd unit's control group: a fresh cgroup v1 under the pids
    controller (children inherit it), killed as KillMode=control-group kills: SIGKILL to
    every process in ``cgroup.procs``. Without one (no cgroup v1, not root) the daemon gets
    its own process group, and the kill reaches it and the worker's process group."""

    def __init__(self) -> None:
        self.path = Path("/sys/fs/cgroup/pids") / f"video-scheduler-test-{uuid.uuid4().hex[:12]}"
        try:
            self.path.mkdir()
        except OSError:
            self.path = None

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the cgroup (the shell joins it, then becomes ``argv``)."""
        if self.path is None:
            return argv
        join = 'echo $$ > "$1" && shift && exec "$@"'
        return ["/bin/sh", "-c", join, "sh", str(self.path / "cgroup.procs"), *argv]

    def pids(self) -> set[int]:
        if self.path is None:
            return set()
        return {int(p) for p in (self.path / "cgroup.procs").read_text().split()}

    def kill(self, daemon: subprocess.Popen, worker_pid: int) -> None:
        if self.path is None:
            for group in (daemon.pid, worker_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
            return
        for _ in range(100):  # until nothing is left (a process may fork while we kill)
            left = self.pids()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        assert not self.pids()

    def remove(self) -> None:
        if self.path is None:
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)


@pytest.fixture
def unit() -> Iterator[Unit]:
    made = Unit()
    try:
        yield made
    finally:
        made.remove()


def log_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_restart_that_kills_the_whole_unit_relaunches_the_render_only(tmp_path: Path, unit: Unit) -> None:
    data_dir = tmp_path / "data"
    sample_chapter.make_chapter(data_dir / "samples", panels=24)  # a render of several seconds
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV and k != "DAILY_QUOTA"}
    env |= {
        "DATA_DIR": str(data_dir),
        "API_PORT": "0",
        "PIPELINE_SETTINGS_FILE": str(tmp_path / "no-settings.toml"),  # the embedded defaults
    }
    added = subprocess.run(
        [*CLI, "add-job", "--account", "a", "--content", "next"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = added.stdout.strip()
    daemon = subprocess.Popen(
        unit.command([*CLI, "run"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=unit.path is None,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # the render worker is up and rendering: it has sent its first heartbeat
            assert time.monotonic() < deadline, f"the render never started: {read_job(data_dir)}"
            assert daemon.poll() is None, "the daemon died"
            cp = read_job(data_dir).get("pipeline") or {}
            started = cp.get("outputs", {}).get("StartRenderer")
            if cp.get("state") == "WaitForRender" and started:
                task = data_dir / "tasks" / started["task_token"]
                if (task / "heartbeat").exists():
                    break
            time.sleep(0.02)
        worker_pid = int(started["instance_id"].removeprefix("pid-"))
        assert running(worker_pid)
        if unit.path is not None:
            assert {daemon.pid, worker_pid} <= unit.pids()  # the worker is in the unit too
        unit.kill(daemon, worker_pid)
        daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    for _ in range(100):
        if not running(worker_pid):
            break
        time.sleep(0.05)
    assert not running(worker_pid)
    # the kill landed during the render: no result, no video
    assert not (task / "result.json").exists()
    assert not (data_dir / "work" / job_id / "video.mp4").exists()
    assert read_job(data_dir)["pipeline"]["state"] == "WaitForRender"

    again = subprocess.Popen(
        [*CLI, "run", "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    job = read_job(data_dir)
    assert (job["status"], job["stage"]) == ("completed", "completed"), (job.get("error"), out[-3000:])
    assert job["retry_count"] == 0
    assert job["pipeline"]["relaunches"] == {"WaitForRender": 1}
    lines = log_lines(out)
    started_states = [line.get("stage") for line in lines if line.get("msg") == "state started"]
    assert started_states[:3] == ["WaitForRender", "StartRenderer", "WaitForRender"], started_states
    assert not {"FetchManga", "GenerateScript", "GenerateTTS"} & set(started_states), started_states
    relaunched = [line for line in lines if line.get("msg") == "worker lost; relaunching"]
    assert len(relaunched) == 1, relaunched
    assert (relaunched[0]["job_id"], relaunched[0]["stage"], relaunched[0]["error"]) == (
        job_id,
        "WaitForRender",
        WORKER_LOST,
    )
    assert not [line for line in lines if line.get("msg", "").startswith("state failed")]
    ledger = json.loads((data_dir / "fetch_ledger.json").read_text(encoding="utf-8"))
    ledger.pop("version")  # the ledger's own version, beside the manga folders
    taken = [(m, n, owner) for m, chapters in ledger.items() for n, owner in chapters.items()]
    assert len(taken) == 1 and taken[0][2] == job_id, ledger  # one chapter, this video's
    assert len(list((data_dir / "published").rglob(f"{job_id}.mp4"))) == 1


def test_the_unit_keeps_workers_alive_across_a_restart() -> None:
    unit_file = (ROOT / "config" / "video-scheduler.service").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit_file.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["KillMode"] == "process"
