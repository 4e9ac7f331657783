"""The worker's ``upload`` task: publish a job's rendered video where its account says.

The publisher is the backend ``providers/registry.py`` names for the account's
UPLOAD_TARGET (a ``providers/upload/base.Publisher``): the embedded one copies the video
and a metadata JSON to ``DATA_DIR/published/YYYY-MM-DD/`` (Vietnam date); ``youtube``
uploads it, resumably.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.pipeline.providers.registry import backend
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

__all__ = ["publish"]


def publish(work: Workspace, settings: PipelineSettings, now: datetime) -> dict[str, Any]:
    """Publish the job's video where its account's settings say; return the worker's output."""
    if not work.video.exists():
        raise FileNotFoundError(f"no rendered video for {work.job_id}: {work.video}")
    source = work.read("source.json")
    account = settings.for_account(str(source.get("account_id") or "default"))
    return backend("upload", account, work.data_dir).publish(work, now)
