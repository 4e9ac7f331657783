"""The embedded publisher: a rendered video to ``DATA_DIR/published/<Vietnam date>/``.

A Shorts cut (SHORTS_CUT) goes beside it as ``<job_id>.shorts.mp4`` with its own
``<job_id>.shorts.json`` (title with ``#Shorts``, the full video's file name).

It copies the video (whole or not at all: a full disk leaves no half-copied file) and
writes beside it a metadata JSON a person can read: the Vietnamese title, the description
with its credits, the tags, the voice, and when it was published. The worker's upload
task uses it when UPLOAD_TARGET is ``local``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline import publishing
from services.pipeline.stages.quota import vietnam_today
from services.pipeline.workspace import Workspace
from services.scheduler.atomic_file import write_atomic

__all__ = ["LocalPublisher", "publish_local"]


def _copy(video: Path, target: Path) -> None:
    """``video`` to ``target``, whole or not at all (a full disk leaves no half-copied file)."""
    temp = target.with_name(f".{target.name}.part")
    try:
        shutil.copyfile(video, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def publish_local(work: Workspace, now: datetime) -> dict[str, Any]:
    """Publish the job's video to ``published/<Vietnam date>/`` (its Shorts cut beside it,
    as ``<job_id>.shorts.mp4``); return the worker's output."""
    script = work.read("script.json")
    source = work.read("source.json")
    speech = work.read("speech.json")
    folder = work.data_dir / "published" / vietnam_today(now).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{work.job_id}.mp4"
    _copy(work.video, target)
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
    url = target.resolve().as_uri()
    answer = {"job_id": work.job_id, "youtube_url": url, "status": "completed"}
    if work.shorts.exists():
        shorts = folder / f"{work.job_id}.shorts.mp4"
        _copy(work.shorts, shorts)
        about = {
            **metadata,
            "title": publishing.shorts_title(script["title"]),
            "description": publishing.describe_shorts(url, script, source),
            "video": shorts.name,
            "full_video": target.name,
        }
        text = (json.dumps(about, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        write_atomic(folder / f"{work.job_id}.shorts.json", text)
        answer["shorts_url"] = shorts.resolve().as_uri()
    return answer


class LocalPublisher:
    """A Publisher (UPLOAD_TARGET=local): ``publish_local``."""

    name: ClassVar[str] = "local"

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        return "local publisher (DATA_DIR/published; UPLOAD_TARGET=local)"

    def publish(self, work: Workspace, now: datetime) -> dict[str, Any]:
        return publish_local(work, now)
