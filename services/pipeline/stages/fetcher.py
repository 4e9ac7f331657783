"""fetcher (FetchManga): take the next chapter and copy its pages into the video's workspace.

Input ``{}`` (the daily loop: any chapter) or ``{"job_id": ..., "manga": "next" | id |
title}`` (a single video). Output, exactly stage-functions.md's::

    {"status": "success", "job_id": "job-abc123", "manga_id": "...", "manga_title": "..."}
    {"status": "no_manga_available"}

The event may name the account (``account_id``, a channel): its settings pick the source
and the manga list (``settings.py``). The embedded source is a local folder
(``SAMPLES_DIR``, default ``DATA_DIR/samples``: the creator's own chapters);
``FETCH_SOURCE=mangadex`` takes them from MangaDex API v5. The source is the backend the
setting names in ``providers/registry.py`` (a ``providers/fetch/base.FetchSource``).
Either way the chapter's pages land in ``work/<job_id>/panels/`` in reading order; then
each page is cut into its panels (``panels/cutting.py``: the pages move to ``pages/``,
the panels take their place in ``panels/``, in reading order, READING_DIRECTION or the
chapter's own), with a ``source.json`` that credits where they came from and names the
account. The credits are
published (the video's description): for a local chapter they name the manga, the chapter
and what its ``manga.json`` credits (author, credits), never the folder on this machine.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.pipeline.providers.registry import backend
from services.pipeline.workspace import Workspace

__all__ = ["handler", "new_job_id"]


def new_job_id() -> str:
    """A video's job id, as FetchManga mints it."""
    return f"job-{uuid.uuid4().hex[:12]}"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """FetchManga: the seed's fetcher JSON out."""
    job_id = str(event.get("job_id") or new_job_id())
    request = str(event.get("manga") or "next")
    account = str(event.get("account_id") or "default")
    settings = context.settings_for(account)
    work = Workspace(context.data_dir, job_id)
    source = backend("fetch", settings, context.data_dir).take(request, account, work)
    if source is None:
        return {"status": "no_manga_available"}
    from services.pipeline.panels.cutting import cut_chapter  # OpenCV loads with a video, not the daemon

    source = cut_chapter(work, source, settings.reading_direction)
    work.write("source.json", source)
    return {
        "status": "success",
        "job_id": job_id,
        "manga_id": source["manga_id"],
        "manga_title": source["manga_title"],
    }
