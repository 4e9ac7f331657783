"""The Spot worker as the instance runs it: a real subprocess talking to a moto server on
127.0.0.1 (S3 and EC2, the real boto3 calls on both sides) and to a loopback metadata
service (IMDSv2): it renders the job from the bucket's inputs and reports through the
bucket; on an interruption notice it reports ``WorkerLost`` at once, which the machine's
policy relaunches. No instance is left running after a test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import boto3
import pytest
from moto.server import ThreadedMotoServer

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.policy import Relaunch, on_lost_worker
from services.pipeline.errors import HeartbeatTimeout, TaskFailed, error_name
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import fetcher, scriptgen, ttsgen
from services.pipeline.stages.worker_stages import start_stage, wait_stage
from services.pipeline.tasks.spot_transport import SpotTransport
from services.pipeline.tasks.task_tokens import TaskReport, judge, mint_token
from services.pipeline.tasks.worker_wheel import build_wheel
from services.pipeline.workspace import Workspace
from services.scheduler.clock import utc_now
from tests.pipeline.stage_context import RecordingContext

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-southeast-1"
BUCKET = "renders"


class FakeIMDS(BaseHTTPRequestHandler):
    """The instance metadata service, IMDSv2: a token first, then the Spot paths."""

    notice: dict[str, str] | None = None
    tokens_asked = 0

    def do_PUT(self) -> None:  # noqa: N802
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            type(self).tokens_asked += 1
            self._send(200, b"imds-session")
        else:
            self._send(400, b"")

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-session":
            self._send(401, b"")
        elif self.path == "/latest/meta-data/spot/instance-action" and type(self).notice:
            self._send(200, json.dumps(type(self).notice).encode())
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def imds():
    FakeIMDS.notice, FakeIMDS.tokens_asked = None, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeIMDS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def moto_server(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    for name, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield url
    ec2 = boto3.client("ec2", region_name=REGION)
    running = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] not in ("terminated", "shutting-down")]
    server.stop()
    assert running == [], f"instances left running: {running}"


async def _job(data: Path, monkeypatch, panels: int = 2) -> str:
    """A job made ready for its render by the embedded stages (fetch, script, voice)."""
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(data.parent / "none.toml"))
    monkeypatch.setenv("SCRIPT_WRITER", "template")
    monkeypatch.setenv("TTS_ENGINE", "local")
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    sample_chapter.make_chapter(data / "samples", panels=panels)
    context = RecordingContext(data_dir=data)
    job_id = (await asyncio.to_thread(fetcher.handler, {}, context))["job_id"]
    await asyncio.to_thread(scriptgen.handler, {"job_id": job_id}, context)
    await asyncio.to_thread(ttsgen.handler, {"job_id": job_id}, context)
    return job_id


async def _ready(tmp_path: Path, monkeypatch, wheel: Path, panels: int = 2
                 ) -> tuple[Path, str, SpotTransport, PipelineSettings]:
    """A data dir with one job ready to render, and the Spot transport on the moto server."""
    data = tmp_path / "data"
    job_id = await _job(data, monkeypatch, panels)
    return (data, job_id, *_transport(data, wheel))


def _transport(data: Path, wheel: Path) -> tuple[SpotTransport, PipelineSettings]:
    ec2 = boto3.client("ec2", region_name=REGION)
    ami = next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]
               if i.get("Architecture") == "x86_64")
    settings = PipelineSettings.from_values({"render_backend": "spot", "render_bucket": BUCKET, "aws_region": REGION,
                                             "renderer_ami_id": ami, "video_format": "shorts"})
    return SpotTransport(data, settings, wheel=wheel), settings


def _launch(transport: SpotTransport, settings: PipelineSettings, job_id: str, token: str, task: str = "render",
            heartbeat_seconds: float = 60) -> dict[str, Any]:
    """StartRenderer's (or StartUploader's) call of the transport for ``job_id``."""
    return transport.start(token, {"task": task, "job_id": job_id, "settings": settings.for_worker()},
                           heartbeat_seconds=heartbeat_seconds)


def _worker(job_id: str, token: str, imds: str, poll: float = 0.2) -> subprocess.Popen[str]:
    """The worker as the user-data starts it: its environment and nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATA_DIR", "PIPELINE_", "SCRIPT_", "TTS_"))}
    env.update(JOB_ID=job_id, TASK_TOKEN=token, RENDER_BUCKET=BUCKET, AWS_REGION=REGION,
               AWS_EC2_METADATA_SERVICE_ENDPOINT=imds, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "services.pipeline.tasks.spot_worker", "render",
                             f"--poll-seconds={poll}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait_for_result(transport: SpotTransport, token: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = transport.result(token)
        if result is not None:
            return result
        time.sleep(0.2)
    raise AssertionError("no result in the bucket")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheels"))


async def test_the_instance_worker_renders_from_the_bucket_and_reports_there(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    data, job_id, transport, settings = await _ready(tmp_path, monkeypatch, wheel)
    token = mint_token()
    started = _launch(transport, settings, job_id, token, heartbeat_seconds=1)
    assert started["instance_id"].startswith("i-")
    worker = _worker(job_id, token, imds)
    try:
        result = await asyncio.to_thread(_wait_for_result, transport, token)
        assert worker.wait(timeout=60) == 0, worker.stdout.read() if worker.stdout else ""
    finally:
        worker.kill()
        transport.end(token, kill=True)
    assert result["status"] == "succeeded", result
    assert result["output"]["video"] == f"s3://{BUCKET}/jobs/{job_id}/video.mp4"
    assert transport.heartbeat(token) is not None  # it beat while it rendered
    assert FakeIMDS.tokens_asked > 0  # it asked the metadata service, IMDSv2
    video = Workspace(data, job_id).video  # brought home when the result was read
    with av.open(str(video)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (1080, 1920)


async def test_an_interruption_notice_reports_a_lost_worker_at_once_and_the_machine_relaunches(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    data, job_id, transport, settings = await _ready(tmp_path, monkeypatch, wheel)
    token = mint_token()
    _launch(transport, settings, job_id, token)
    FakeIMDS.notice = {"action": "terminate", "time": "2026-12-02T10:00:00Z"}
    worker = _worker(job_id, token, imds, poll=0.1)
    try:
        result = await asyncio.to_thread(_wait_for_result, transport, token, 60)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert result["status"] == "failed" and result["error"] == "WorkerLost"
    assert "Spot interruption notice (terminate at 2026-12-02T10:00:00Z)" in result["cause"]
    assert not Workspace(data, job_id).video.exists()  # nothing downloaded for a failure
    with pytest.raises(TaskFailed) as seen:  # the wait's look at it, then the machine's policy
        judge(TaskReport(None, result), started=utc_now(), now=utc_now(), heartbeat_seconds=300,
              timeout_seconds=14400)
    spec = load_definition().state("WaitForRender")
    assert on_lost_worker(spec, error_name(seen.value), 0) == Relaunch("StartRenderer", 1)
    transport.end(token, kill=True)


# -- through the Start* and WaitFor* stages ------------------------------------------------------


def _states(ec2: Any) -> dict[str, str]:
    return {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]}


async def test_a_silent_instance_times_out_is_terminated_and_a_new_one_renders(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    data, job_id, _, settings = await _ready(tmp_path, monkeypatch, wheel)
    context = RecordingContext(data_dir=data, settings=settings)
    monkeypatch.setattr("services.pipeline.tasks.spot_transport.SpotTransport._upload_wheel",
                        lambda self: _put_wheel(self, wheel))
    spec = load_definition().state("WaitForRender")
    start, wait = start_stage("render", 300), wait_stage(spec, "render", poll=0.1)
    impatient = wait_stage(spec.model_copy(update={"heartbeat_seconds": 1}), "render", poll=0.1)
    first = await asyncio.to_thread(start, {"job_id": job_id, "task_token": mint_token()}, context)
    with pytest.raises(HeartbeatTimeout):  # nobody beats under the first token
        await impatient(first, context)
    ec2 = boto3.client("ec2", region_name=REGION)
    assert _states(ec2)[first["instance_id"]] in ("shutting-down", "terminated")  # killed before the retry
    second = await asyncio.to_thread(start, {"job_id": job_id, "task_token": mint_token()}, context)
    assert second["instance_id"] != first["instance_id"]
    worker = _worker(job_id, second["task_token"], imds)
    try:
        output = await wait(second, context)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert output["video"].endswith(f"jobs/{job_id}/video.mp4") and Workspace(data, job_id).video.exists()
    assert _states(ec2)[second["instance_id"]] in ("shutting-down", "terminated")  # ended with the wait


async def test_a_daemon_stopped_mid_wait_reattaches_and_the_sweep_spares_only_owned_workers(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    data, job_id, transport, settings = await _ready(tmp_path, monkeypatch, wheel)
    stray = mint_token()  # a worker whose job is gone (a daemon that died, a job removed)
    _launch(transport, settings, job_id, stray)
    monkeypatch.setattr("services.pipeline.tasks.spot_transport.SpotTransport._upload_wheel",
                        lambda self: _put_wheel(self, wheel))
    context = RecordingContext(data_dir=data, settings=settings)
    started = await asyncio.to_thread(start_stage("render", 300), {"job_id": job_id, "task_token": mint_token()},
                                      context)
    ec2 = boto3.client("ec2", region_name=REGION)
    states = _states(ec2)
    assert list(states.values()).count("running") == 1 and states[started["instance_id"]] == "running"
    worker = _worker(job_id, started["task_token"], imds)
    spec = load_definition().state("WaitForRender")
    waiting = asyncio.create_task(wait_stage(spec, "render", poll=0.1)(started, context))
    try:
        await asyncio.sleep(0.5)
        waiting.cancel()  # the daemon stops mid-wait: the instance is left to finish
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert _states(ec2)[started["instance_id"]] == "running"
        # the restarted daemon resumes the wait under the same token: re-attached, not relaunched
        output = await wait_stage(spec, "render", poll=0.1)(started, context)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert output["status"] == "completed" and Workspace(data, job_id).video.exists()
    assert len(_states(ec2)) == 2  # no third instance was launched


def _put_wheel(transport: SpotTransport, wheel: Path) -> str:
    key = f"wheels/{wheel.parent.name}/{wheel.name}"
    transport.s3.upload_file(str(wheel), transport.bucket, key)
    return key


async def test_a_relaunched_instance_renders_only_the_pieces_the_first_did_not_finish(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    data, job_id, transport, settings = await _ready(tmp_path, monkeypatch, wheel, panels=8)  # about 40 s of video: two pieces
    s3 = boto3.client("s3", region_name=REGION)
    first = mint_token()
    _launch(transport, settings, job_id, first)
    worker = _worker(job_id, first, imds)
    assert worker.wait(timeout=180) == 0, worker.stdout.read() if worker.stdout else ""
    transport.end(first, kill=True)
    prefix = f"jobs/{job_id}/pieces/"
    pieces = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert len(pieces) >= 2
    # as if the first instance had been reclaimed before its last piece: that piece is missing
    lost = sorted(pieces)[-1]
    s3.delete_object(Bucket=BUCKET, Key=lost)
    s3.delete_object(Bucket=BUCKET, Key=f"jobs/{job_id}/video.mp4")
    time.sleep(1.1)  # S3 times are to the second: a piece made again would show a later one
    second = mint_token()
    _launch(transport, settings, job_id, second)
    relaunched = _worker(job_id, second, imds)
    try:
        assert relaunched.wait(timeout=180) == 0, relaunched.stdout.read() if relaunched.stdout else ""
        result = transport.result(second)
    finally:
        transport.end(second, kill=True)
    assert result is not None and result["status"] == "succeeded"
    after = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert set(after) == set(pieces)  # the lost piece made again, nothing else added
    assert all(after[key] == pieces[key] for key in pieces if key != lost)  # the others reused, not rendered
    assert after[lost] > pieces[lost]


async def test_a_spot_upload_publishes_with_the_token_it_was_sent(
    tmp_path: Path, monkeypatch, moto_server: str, imds: str, wheel: Path
) -> None:
    from tests.pipeline.loopback_services import LoopbackYouTube
    from tests.pipeline.test_going_live import write_token_file

    data, job_id, transport, render_settings = await _ready(tmp_path, monkeypatch, wheel)
    render_token = mint_token()
    _launch(transport, render_settings, job_id, render_token)
    rendering = _worker(job_id, render_token, imds)
    assert rendering.wait(timeout=180) == 0
    assert transport.result(render_token)["status"] == "succeeded"  # the video is home now
    transport.end(render_token, kill=True)
    with LoopbackYouTube() as youtube:
        token_file = write_token_file(tmp_path / "youtube-token.json", youtube.token_uri)
        upload_settings = PipelineSettings.from_values({
            **render_settings.for_worker(), "upload_backend": "spot", "uploader_ami_id": render_settings.renderer_ami_id,
            "upload_target": "youtube", "youtube_token_file": str(token_file), "youtube_api_url": youtube.api_url,
        })
        uploader = SpotTransport(data, upload_settings, wheel=wheel)
        upload_token = mint_token()
        _launch(uploader, upload_settings, job_id, upload_token, task="upload")
        (data / "work" / job_id / "video.mp4").unlink()  # the instance works from the bucket alone
        assert token_file.read_text() not in json.dumps(upload_settings.for_worker())  # a path, not the token
        token_file.rename(tmp_path / "kept-elsewhere.json")  # the instance cannot read the daemon's file
        uploading = subprocess.Popen(
            [sys.executable, "-m", "services.pipeline.tasks.spot_worker", "upload", "--poll-seconds=0.2"],
            env={**{k: v for k, v in os.environ.items() if not k.startswith(("DATA_DIR", "PIPELINE_"))},
                 "JOB_ID": job_id, "TASK_TOKEN": upload_token, "RENDER_BUCKET": BUCKET, "AWS_REGION": REGION,
                 "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert uploading.wait(timeout=180) == 0, uploading.stdout.read() if uploading.stdout else ""
            result = uploader.result(upload_token)
        finally:
            uploader.end(upload_token, kill=True)
        assert result["status"] == "succeeded" and result["output"]["youtube_url"].endswith("vid123")
        (session,) = youtube.uploaded()
        assert len(session.data) > 1000  # the rendered video, from the bucket, to YouTube
        assert youtube.token_requests()  # refreshed with the token the instance was sent
