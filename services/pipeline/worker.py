"""The render and upload workers: ``python -m services.pipeline.worker render|upload``.

A worker is started by StartRenderer / StartUploader with a job id and a task token. It
sends a heartbeat every ``--heartbeat-seconds`` (HeartbeatSeconds / 5) from a background
thread while it works, and ends with one result through the task transport: success with
its output, or failure with an error name (RenderError, UploadError) and a cause, as the
seed's SendTaskSuccess / SendTaskFailure.

- ``render``: the video from ``work/<job_id>/`` (panels, speech.json, script.json) to
  ``work/<job_id>/video.mp4``. A video already rendered for this job (a retry after the
  worker or the daemon died past the render) is kept, not rendered again.
- ``upload``: the embedded publisher: copies the video and a metadata JSON (Vietnamese
  title, description, tags, credits) to ``DATA_DIR/published/YYYY-MM-DD/`` (Vietnam date).

Settings read here: DATA_DIR, VIDEO_FORMAT (``landscape`` 1920×1080, default, or
``shorts`` 1080×1920).
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
from typing import Any

from services.scheduler.atomic_file import write_atomic
from services.scheduler.clock import utc_now
from services.scheduler.log_format import configure_logging

from .providers.render_local import LANDSCAPE, PORTRAIT, Segment, render_video
from .quota import vietnam_today
from .task_tokens import LocalTransport
from .workspace import Workspace, data_dir_from_env

__all__ = ["VIDEO_FORMATS", "main", "publish", "render", "video_size_from_env"]

logger = logging.getLogger(__name__)

VIDEO_FORMATS = {"landscape": LANDSCAPE, "shorts": PORTRAIT}
_ERRORS = {"render": "RenderError", "upload": "UploadError"}


def video_size_from_env() -> tuple[int, int]:
    """VIDEO_FORMAT as a frame size; ValueError naming the allowed values."""
    name = (os.environ.get("VIDEO_FORMAT") or "landscape").strip().lower()
    if name not in VIDEO_FORMATS:
        raise ValueError(f"VIDEO_FORMAT must be one of {', '.join(VIDEO_FORMATS)}, got {name!r}")
    return VIDEO_FORMATS[name]


def render(work: Workspace) -> dict[str, Any]:
    """Render the job's video (or keep the one already made); return the worker's output."""
    if not work.video.exists():
        speech = work.read("speech.json")
        segments = [
            Segment(work.panels / item["panel"], item["text"], work.audio / item["audio"])
            for item in speech["segments"]
        ]
        render_video(segments, work.video, size=video_size_from_env(), work_dir=work.root)
    return {"job_id": work.job_id, "status": "completed", "video": str(work.video)}


def publish(work: Workspace, now: datetime) -> dict[str, Any]:
    """Publish the job's video to ``published/<Vietnam date>/``; return the worker's output."""
    if not work.video.exists():
        raise FileNotFoundError(f"no rendered video for {work.job_id}: {work.video}")
    script = work.read("script.json")
    source = work.read("source.json")
    speech = work.read("speech.json")
    folder = work.data_dir / "published" / vietnam_today(now).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{work.job_id}.mp4"
    temp = folder / f".{target.name}.part"
    shutil.copyfile(work.video, temp)
    os.replace(temp, target)
    description = f"{script['description']}\n\nNguồn: {source.get('credits', '')}"
    metadata = {
        "job_id": work.job_id,
        "title": script["title"],
        "description": description,
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
    task: str, job_id: str, token: str, *, heartbeat_seconds: float, clock: Callable[[], datetime] = utc_now
) -> int:
    """Do ``task`` for ``job_id`` reporting under ``token``; return the exit code."""
    data_dir = data_dir_from_env()
    transport = LocalTransport(data_dir / "tasks")
    transport.heartbeat(token, clock())
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(transport, token, heartbeat_seconds, stop), daemon=True)
    beat.start()
    log = {"job_id": job_id, "stage": f"worker:{task}"}
    try:
        work = Workspace(data_dir, job_id)
        output = render(work) if task == "render" else publish(work, clock())
    except Exception as exc:  # reported to the machine as the task's failure
        logger.exception("worker failed", extra=log)
        transport.fail(token, _ERRORS[task], f"{type(exc).__name__}: {exc}", clock())
        return 1
    finally:
        stop.set()
        beat.join(timeout=5)
    transport.succeed(token, output, clock())
    logger.info("worker done", extra=log)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of a worker (started by the machine, not by hand)."""
    parser = argparse.ArgumentParser(prog="python -m services.pipeline.worker")
    parser.add_argument("task", choices=sorted(_ERRORS))
    parser.add_argument("--job", required=True, help="the video's job id")
    parser.add_argument("--token", required=True, help="the task token to report under")
    parser.add_argument("--heartbeat-seconds", type=float, default=60.0, help="seconds between heartbeats")
    args = parser.parse_args(argv)
    if args.heartbeat_seconds <= 0:
        parser.error("--heartbeat-seconds must be positive")
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return run_task(args.task, args.job, args.token, heartbeat_seconds=args.heartbeat_seconds)


if __name__ == "__main__":
    sys.exit(main())
