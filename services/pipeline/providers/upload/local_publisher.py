"""The embedded publisher: a rendered video to ``DATA_DIR/published/<Vietnam date>/``.

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
