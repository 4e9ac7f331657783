"""The render and upload workers: ``python -m services.pipeline.tasks.worker render|upload``.

A worker is started by StartRenderer / StartUploader with a job id, a task token and the
data dir; the rest (the settings, secrets left out, and the log level) it reads from the
task's ``task.json`` (``LocalTransport.write_task``), never from the environment. It
sends a heartbeat every ``--heartbeat-seconds`` (HeartbeatSeconds / 5) from a background
thread while it works, and ends with one result through the task transport: success with
its output, or failure with an error name (RenderError, UploadError) and a cause, as the
seed's SendTaskSuccess / SendTaskFailure.

- ``render``: the video from ``work/<job_id>/`` (panels, speech.json, script.json) to
  ``work/<job_id>/video.mp4``. A video already rendered for this job (a retry after the
  worker or the daemon died past the render) is kept, not rendered again.
- ``upload``: by the settings of the video's account (``UPLOAD_TARGET``): the embedded
  publisher copies the video and a metadata JSON (Vietnamese title, description, tags,
  credits) to ``DATA_DIR/published/YYYY-MM-DD/`` (Vietnam date); ``youtube`` uploads it
  with the YouTube Data API (``providers/youtube.py``), resumably: the upload session is
  kept in ``work/<job_id>/upload_session.json``, so a worker started again after a crash
  goes on with the same upload. A spent YouTube quota is reported as YouTubeQuotaError.

Before rendering, every subtitle is checked against the font (``fonts.displayable``): a
character it has no glyph for is replaced by a stand-in or dropped, with a warning.

Settings used here (from the task file): VIDEO_FORMAT (``landscape`` 1920×1080, default,
or ``shorts`` 1080×1920), UPLOAD_TARGET and the YOUTUBE_* settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline import publishing
from services.pipeline.errors import PipelineError
from services.pipeline.providers.fonts import displayable
from services.pipeline.providers.render.render_local import LANDSCAPE, PORTRAIT, Segment, render_video
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages.quota import vietnam_today
from services.pipeline.tasks.task_tokens import LocalTransport
from services.pipeline.workspace import Workspace
from services.scheduler.atomic_file import write_atomic
from services.scheduler.clock import utc_now
from services.scheduler.log_format import configure_logging

__all__ = [
    "VIDEO_FORMATS",
    "main",
    "publish",
    "publish_local",
    "publish_youtube",
    "render",
    "video_size",
]

logger = logging.getLogger(__name__)

VIDEO_FORMATS = {"landscape": LANDSCAPE, "shorts": PORTRAIT}
_ERRORS = {"render": "RenderError", "upload": "UploadError"}


def video_size(settings: PipelineSettings) -> tuple[int, int]:
    """VIDEO_FORMAT as a frame size."""
    return VIDEO_FORMATS[settings.video_format]


def render(work: Workspace, settings: PipelineSettings) -> dict[str, Any]:
    """Render the job's video (or keep the one already made); return the worker's output."""
    if not work.video.exists():
        speech = work.read("speech.json")
        segments = [_segment(work, item) for item in speech["segments"]]
        render_video(segments, work.video, size=video_size(settings), work_dir=work.root)
    return {"job_id": work.job_id, "status": "completed", "video": str(work.video)}


def _segment(work: Workspace, item: dict[str, Any]) -> Segment:
    """A speech.json entry as the renderer's Segment, its texts made drawable by the font."""
    panels = [work.panels / name for name in (item.get("panels") or [item["panel"]])]
    cues = tuple(
        (float(cue["start"]), float(cue["end"]), _drawable(work, cue["text"])) for cue in item.get("cues", [])
    )
    return Segment(
        panels[0], _drawable(work, item["text"]), work.audio / item["audio"], cues, tuple(panels[1:])
    )


def _drawable(work: Workspace, text: str) -> str:
    clean, dropped = displayable(text)
    if dropped:
        logger.warning(
            "subtitle characters the font cannot draw were dropped",
            extra={"job_id": work.job_id, "stage": "worker:render", "dropped": dropped},
        )
    return clean


def publish(work: Workspace, settings: PipelineSettings, now: datetime) -> dict[str, Any]:
    """Publish the job's video where its account's settings say; return the worker's output."""
    if not work.video.exists():
        raise FileNotFoundError(f"no rendered video for {work.job_id}: {work.video}")
    source = work.read("source.json")
    settings = settings.for_account(str(source.get("account_id") or "default"))
    if settings.upload_target == "youtube":
        return publish_youtube(work, settings, now)
    return publish_local(work, now)


def publish_youtube(work: Workspace, settings: PipelineSettings, now: datetime) -> dict[str, Any]:
    """Upload the job's video to YouTube; the output carries its watch URL."""
    from services.pipeline.providers.upload import youtube  # the Google client loads only when it uploads

    if settings.youtube_token_file is None:
        raise youtube.YouTubeAuthError(
            "UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE: run `python run_scheduler.py youtube-auth`"
        )
    script, source = work.read("script.json"), work.read("source.json")
    account = str(source.get("account_id") or "default")
    thumbnail = None
    if settings.youtube_thumbnail:
        first = work.panels / source["panels"][0]
        thumbnail = publishing.make_thumbnail(first, work.root / "thumbnail.jpg")
    upload = youtube.UploadSettings(
        privacy=settings.youtube_privacy,
        category_id=settings.youtube_category_id,
        publish_at=publishing.publish_time(settings.youtube_publish_at, now),
        synthetic_media=True,
        thumbnail=thumbnail,
    )
    body = youtube.video_body(
        script["title"], publishing.describe(script, source), script.get("tags", []), upload
    )
    video_id = youtube.upload_video(
        work.video,
        body,
        upload,
        session_file=work.root / "upload_session.json",
        credentials=youtube.load_credentials(settings.youtube_token_file, account=account),
        job_id=work.job_id,
        account=account,
        api_url=settings.youtube_api_url,
    )
    return {"job_id": work.job_id, "youtube_url": youtube.video_url(video_id), "status": "completed"}


def publish_local(work: Workspace, now: datetime) -> dict[str, Any]:
    """Publish the job's video to ``published/<Vietnam date>/``; return the worker's output."""
    script = work.read("script.json")
    source = work.read("source.json")
    speech = work.read("speech.json")
    folder = work.data_dir / "published" / vietnam_today(now).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{work.job_id}.mp4"
    temp = folder / f".{target.name}.part"
    try:
        shutil.copyfile(work.video, temp)
        os.replace(temp, target)
    except BaseException:  # a full disk: no half-copied video is left behind
        temp.unlink(missing_ok=True)
        raise
    metadata = {
        "job_id": work.job_id,
        "title": script["title"],
        "description": publishing.describe(script, source),
        "tags": script["tags"],
        "video": target.name,
        "voice": speech.get("engine"),
        "placeholder_voice": bool(speech.get("placeholder")),
        "published_at": now.isoformat(),
    }
    payload = (json.dumps(metadata, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    write_atomic(folder / f"{work.job_id}.json", payload)
    return {"job_id": work.job_id, "youtube_url": target.resolve().as_uri(), "status": "completed"}


def _beat(transport: LocalTransport, token: str, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            transport.heartbeat(token, utc_now())
        except OSError:
            logger.exception("could not write a heartbeat", extra={"token": token[:8]})


def run_task(
    task: str,
    job_id: str,
    token: str,
    *,
    data_dir: Path,
    heartbeat_seconds: float,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """Do ``task`` for ``job_id`` reporting under ``token`` in ``data_dir``; return the exit code."""
    transport = LocalTransport(data_dir / "tasks")
    transport.heartbeat(token, clock())
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(transport, token, heartbeat_seconds, stop), daemon=True)
    beat.start()
    log = {"job_id": job_id, "stage": f"worker:{task}"}
    try:
        settings = PipelineSettings.from_values(transport.read_task(token)["settings"])
        work = Workspace(data_dir, job_id)
        output = render(work, settings) if task == "render" else publish(work, settings, clock())
    except Exception as exc:  # reported to the machine as the task's failure
        logger.exception("worker failed", extra=log)
        # a named pipeline error (YouTubeQuotaError) keeps its name for the state's Catch
        name = exc.name if isinstance(exc, PipelineError) else _ERRORS[task]
        transport.fail(token, name, f"{type(exc).__name__}: {exc}", clock())
        return 1
    finally:
        stop.set()
        beat.join(timeout=5)
    transport.succeed(token, output, clock())
    logger.info("worker done", extra=log)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of a worker (started by the machine, not by hand)."""
    parser = argparse.ArgumentParser(prog="python -m services.pipeline.tasks.worker")
    parser.add_argument("task", choices=sorted(_ERRORS))
    parser.add_argument("--job", required=True, help="the video's job id")
    parser.add_argument("--token", required=True, help="the task token to report under")
    parser.add_argument("--data-dir", required=True, type=Path, help="the scheduler's data dir")
    parser.add_argument("--heartbeat-seconds", type=float, default=60.0, help="seconds between heartbeats")
    args = parser.parse_args(argv)
    if args.heartbeat_seconds <= 0:
        parser.error("--heartbeat-seconds must be positive")
    try:
        level = str(LocalTransport(args.data_dir / "tasks").read_task(args.token).get("log_level") or "INFO")
    except (OSError, ValueError):
        level = "INFO"  # run_task reports the unreadable task file as the task's failure
    configure_logging(level)
    return run_task(
        args.task, args.job, args.token, data_dir=args.data_dir, heartbeat_seconds=args.heartbeat_seconds
    )


if __name__ == "__main__":
    sys.exit(main())
