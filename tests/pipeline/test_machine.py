"""The state machine runner with stand-in stages: paths, retries with the policy's delays,
catches, timeouts, the quota loop, and resuming from a checkpoint."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint, Machine, PipelineFailed, StageFunc
from services.pipeline.errors import TaskFailed, YouTubeQuotaError
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.stages.check_video import VideoQualityError

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
DEFINITION = load_definition()


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class Stages:
    """Stand-in stages returning the seed's JSON; ``fail[state]`` lists errors to raise first."""

    def __init__(self, quota: int = 10, used: int = 0, chapters: int = 100) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, list[Exception]] = defaultdict(list)
        self.quota, self.count, self.chapters = quota, used, chapters
        self.videos = 0
        self.tokens = 0

    def table(self) -> dict[str, Any]:
        names = [n for n, s in DEFINITION.states.items() if s.type == "Task"]
        return {name: self._stage(name) for name in names}

    def _stage(self, name: str):
        def stage(event: dict[str, Any], context: Any) -> dict[str, Any]:
            self.calls.append(name)
            if self.fail[name]:
                raise self.fail[name].pop(0)
            return getattr(self, name)(event)

        return stage

    def CheckQuota(self, event):
        return {
            "quota": self.quota,
            "used": self.count,
            "remaining": max(0, self.quota - self.count),
            "quota_reached": self.count >= self.quota,
            "daily_quota": self.quota,
            "daily_count": self.count,
        }

    def FetchManga(self, event):
        if self.videos >= self.chapters:
            return {"status": "no_manga_available"}
        self.videos += 1
        return {
            "status": "success",
            "job_id": event.get("job_id") or f"job-{self.videos}",
            "manga_id": "m",
            "manga_title": "Cậu bé và con rồng",
        }

    def GenerateScript(self, event):
        return {"job_id": event["job_id"], "script_generated": True, "segment_count": 12}

    def GenerateTTS(self, event):
        return {
            "job_id": event["job_id"],
            "audio_generated": True,
            "segment_count": 12,
            "continuation_token": None,
        }

    def StartRenderer(self, event):
        self.tokens += 1
        return {
            "job_id": event["job_id"],
            "instance_id": f"pid-{self.tokens}",
            "instance_type": "local",
            "spot_request_id": None,
            "task_token": f"tok-{self.tokens}",
        }

    StartUploader = StartRenderer

    def WaitForRender(self, event):
        return {"job_id": event["job_id"], "status": "completed", "task_token": event["task_token"]}

    def CheckVideo(self, event):
        return {"job_id": event["job_id"], "passed": True, "figures": {"cuts_per_minute": 16.0}}

    def WaitForUpload(self, event):
        return {"job_id": event["job_id"], "youtube_url": "file://x.mp4", "status": "completed"}

    def Cleanup(self, event):
        return {"job_id": event["job_id"], "objects_deleted": 3, "bytes_freed": 1000}

    def IncrementCounter(self, event):
        self.count += 1
        return {"daily_count": self.count, "date": "2026-11-24", "job_id": event["job_id"]}

    def HandleError(self, event):
        return {"job_id": event["job_id"], "status": "failed", "error_logged": True}


def machine(stages: Stages, clock: Clock, saved: list[dict], **replaced: StageFunc) -> Machine:
    """A machine on ``stages``' table, with ``replaced`` stages swapped in by state name."""

    async def save(cp: Checkpoint) -> None:
        saved.append(json.loads(cp.model_dump_json()))

    table = {**stages.table(), **replaced}
    return Machine(DEFINITION, table, save=save, clock=clock, sleep=clock.sleep, hooks=PipelineRun())


VIDEO_PATH = [
    "CheckQuota",
    "FetchManga",
    "GenerateScript",
    "GenerateTTS",
    "StartRenderer",
    "WaitForRender",
    "CheckVideo",
    "StartUploader",
    "WaitForUpload",
    "Cleanup",
    "IncrementCounter",
]


async def test_a_single_video_runs_every_state_once_and_saves_after_each() -> None:
    stages, clock, saved = Stages(), Clock(), []
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert stages.calls == VIDEO_PATH
    assert done.state == "Done" and done.video_job_id == "job-1"
    # saved after every state, the Choice states included (QuotaChoice, FetchChoice)
    after_each = ["QuotaChoice", "FetchManga", "FetchChoice", *VIDEO_PATH[2:], "CheckMoreVideos", "Done"]
    assert [s["state"] for s in saved] == after_each
    assert done.outputs["WaitForRender"]["task_token"] == "tok-1"
    assert done.videos == [{"job_id": "job-1", "outcome": "published"}]


async def test_a_transient_failure_is_retried_after_the_policys_delays() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["GenerateScript"] = [ConnectionError("LLM down"), ConnectionError("LLM down")]
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert done.state == "Done"
    assert clock.slept == [60.0, 120.0]  # IntervalSeconds 60, BackoffRate 2
    assert stages.calls.count("GenerateScript") == 3
    retry_saves = [s for s in saved if s["retry_at"]]
    # one count per retrier: LLMAuthError (never retried), then States.ALL
    assert [s["attempts"]["GenerateScript"] for s in retry_saves] == [[0, 1], [0, 2]]


async def test_a_stage_that_keeps_failing_goes_to_handle_error_and_the_run_goes_on() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["GenerateTTS"] = [OSError("disk full")] * 3
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert stages.calls[-2:] == ["GenerateTTS", "HandleError"]
    assert done.state == "Done"
    assert done.error == {"Error": "OSError", "Cause": "disk full", "state": "GenerateTTS"}
    assert done.videos == [{"job_id": "job-1", "outcome": "failed"}]


async def test_a_stage_past_its_timeout_raises_states_timeout(monkeypatch) -> None:
    definition = load_definition()
    quick = definition.states["GenerateScript"].model_copy(update={"timeout_seconds": 1, "retry": ()})
    definition.states["GenerateScript"] = quick
    stages, clock, saved = Stages(), Clock(), []
    table = stages.table()

    async def slow(event, context):
        await asyncio.sleep(30)

    table["GenerateScript"] = slow

    async def save(cp: Checkpoint) -> None:
        saved.append(json.loads(cp.model_dump_json()))

    done = await Machine(definition, table, save=save, clock=clock, sleep=clock.sleep, hooks=PipelineRun()).run(Checkpoint())
    assert done.error["Error"] == "States.Timeout"
    assert "ran longer than its TimeoutSeconds (1 s)" in done.error["Cause"]


async def test_youtube_quota_stops_the_day_and_keeps_the_rendered_video() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["WaitForUpload"] = [YouTubeQuotaError("quotaExceeded")]
    done = await machine(stages, clock, saved).run(Checkpoint(loop=True))
    assert done.state == "QuotaReached"
    assert clock.slept == []  # never retried
    assert "WaitForRender" in done.outputs and "Cleanup" not in stages.calls
    assert done.error == {"Error": "YouTubeQuotaError", "Cause": "quotaExceeded", "state": "WaitForUpload"}


async def test_a_silent_worker_is_replaced_by_a_new_one() -> None:
    stages, clock, saved = Stages(), Clock(), []
    from services.pipeline.errors import HeartbeatTimeout

    stages.fail["WaitForRender"] = [HeartbeatTimeout("no heartbeat for 300 s")]
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert done.state == "Done"
    assert stages.calls[4:8] == ["StartRenderer", "WaitForRender", "StartRenderer", "WaitForRender"]
    assert done.outputs["WaitForRender"]["task_token"] == "tok-2"  # the second worker's token
    assert clock.slept == [30.0]


async def test_a_worker_failure_is_caught_by_name() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["WaitForRender"] = [TaskFailed("ffmpeg exited 1", name="RenderError")]
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert done.error == {"Error": "RenderError", "Cause": "ffmpeg exited 1", "state": "WaitForRender"}


async def test_a_video_the_gate_refuses_goes_to_handle_error_at_once_and_is_never_uploaded() -> None:
    stages, clock, saved = Stages(), Clock(), []
    cause = "the video fails the quality gate: frozen_seconds is 8.5, must be <= 3 s"
    stages.fail["CheckVideo"] = [VideoQualityError(cause)]
    done = await machine(stages, clock, saved).run(Checkpoint())
    assert stages.calls == VIDEO_PATH[:7] + ["HandleError"]  # not retried: the same file fails the same way
    assert "StartUploader" not in stages.calls and clock.slept == []
    assert done.error == {"Error": "VideoQualityError", "Cause": cause, "state": "CheckVideo"}
    assert done.videos == [{"job_id": "job-1", "outcome": "failed"}]


async def test_an_uncaught_error_fails_the_run() -> None:
    stages, clock, saved = Stages(), Clock(), []
    stages.fail["HandleError"] = [OSError("jobs unwritable")] * 4
    stages.fail["FetchManga"] = [ValueError("bad page")] * 3
    with pytest.raises(PipelineFailed, match="HandleError failed with OSError: jobs unwritable"):
        await machine(stages, clock, saved).run(Checkpoint())


async def test_a_daily_run_at_quota_3_with_one_failed_video_publishes_3_and_records_4() -> None:
    stages, clock, saved = Stages(quota=3), Clock(), []
    # the second video's script fails for good (1 try + 2 retries)
    original = stages._stage("GenerateScript")

    def script(event, context):
        if event["job_id"] == "job-2":
            stages.calls.append("GenerateScript")
            raise ValueError("unreadable chapter")
        return original(event, context)

    done = await machine(stages, clock, saved, GenerateScript=script).run(Checkpoint(loop=True))
    assert done.state == "Done"
    assert [v["outcome"] for v in done.videos] == ["published", "failed", "published", "published"]
    assert [v["job_id"] for v in done.videos] == ["job-1", "job-2", "job-3", "job-4"]
    assert stages.count == 3


async def test_the_loop_stops_after_three_failed_videos_in_a_row() -> None:
    stages, clock, saved = Stages(quota=10, chapters=50), Clock(), []

    def upload(event, context):  # e.g. the channel's token expired: every upload fails
        raise RuntimeError("invalid_grant: token expired")

    done = await machine(stages, clock, saved, WaitForUpload=upload).run(Checkpoint(loop=True))
    assert done.state == "Done"
    assert [v["outcome"] for v in done.videos] == ["failed"] * 3
    assert stages.videos == 3  # 47 chapters left for when the channel works again


async def test_the_loop_stops_when_no_manga_is_left() -> None:
    stages, clock, saved = Stages(quota=10, chapters=2), Clock(), []
    done = await machine(stages, clock, saved).run(Checkpoint(loop=True))
    assert done.state == "NoMangaAvailable" and len(done.videos) == 2


async def test_quota_already_reached_stops_at_once() -> None:
    stages, clock, saved = Stages(quota=3, used=3), Clock(), []
    done = await machine(stages, clock, saved).run(Checkpoint(loop=True))
    assert done.state == "QuotaReached" and stages.calls == ["CheckQuota"]


async def test_a_run_resumes_at_the_first_unfinished_state() -> None:
    stages, clock, saved = Stages(), Clock(), []
    await machine(stages, clock, saved).run(Checkpoint())
    at_render = next(s for s in saved if s["state"] == "WaitForRender")  # the daemon died here
    again = Stages()
    again.tokens = 1
    done = await machine(again, Clock(), []).run(Checkpoint.model_validate(at_render))
    assert again.calls == VIDEO_PATH[VIDEO_PATH.index("WaitForRender") :]
    assert done.state == "Done" and done.video_job_id == "job-1"


async def test_a_resumed_retry_waits_only_the_rest_of_its_delay() -> None:
    stages, clock, saved = Stages(), Clock(), []
    cp = Checkpoint(
        state="GenerateScript",
        video_job_id="job-1",
        retry_at=T0 + timedelta(seconds=45),
        outputs={"CheckQuota": stages.CheckQuota({}), "FetchManga": {"status": "success", "job_id": "job-1"}},
    )
    await machine(stages, clock, saved).run(cp)
    assert clock.slept == [45.0]


def test_every_task_state_needs_a_stage() -> None:
    table = Stages().table()
    del table["Cleanup"]
    with pytest.raises(ValueError, match="no stage function for: Cleanup"):
        Machine(DEFINITION, table, save=lambda cp: None, clock=Clock(), hooks=PipelineRun())


def test_a_checkpoint_carries_its_version_and_a_newer_one_is_refused() -> None:
    from pydantic import ValidationError

    assert Checkpoint().model_dump(mode="json")["version"] == 1
    assert Checkpoint.model_validate({"state": "GenerateTTS"}).version == 1  # saved before versions
    with pytest.raises(ValidationError, match="checkpoint version 2 is newer than this daemon reads"):
        Checkpoint.model_validate({"version": 2, "state": "GenerateTTS"})
