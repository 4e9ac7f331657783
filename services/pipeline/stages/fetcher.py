"""fetcher (FetchManga): take the next chapter and copy its pages into the video's workspace.

Input ``{}`` (the daily loop: any chapter) or ``{"job_id": ..., "manga": "next" | id |
title}`` (a single video). Output, exactly stage-functions.md's::

    {"status": "success", "job_id": "job-abc123", "manga_id": "...", "manga_title": "..."}
    {"status": "no_manga_available"}

The event may name the account (``account_id``, a channel): its settings pick the source
and the manga list (``settings.py``). The embedded source is a local folder
(``SAMPLES_DIR``, default ``DATA_DIR/samples``: the creator's own chapters);
``FETCH_SOURCE=mangadex`` takes them from MangaDex API v5 (``providers/mangadex.py``).
Either way the chapter's pages land in ``work/<job_id>/panels/`` in reading order with a
``source.json`` that credits where they came from and names the account. The credits are
published (the video's description): for a local chapter they name the manga, the chapter
and what its ``manga.json`` credits (author, credits), never the folder on this machine.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.pipeline.providers.fetch.local_source import LocalFolderSource
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from services.pipeline.providers.fetch.mangadex import MangaDexQuery

__all__ = ["handler", "new_job_id"]


def new_job_id() -> str:
    """A video's job id, as FetchManga mints it."""
    return f"job-{uuid.uuid4().hex[:12]}"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """FetchManga: the seed's fetcher JSON out."""
    data_dir = context.data_dir
    job_id = str(event.get("job_id") or new_job_id())
    request = str(event.get("manga") or "next")
    account = str(event.get("account_id") or "default")
    settings = context.settings_for(account)
    if settings.fetch_source == "mangadex":
        return _from_mangadex(settings, data_dir, job_id, request, account)
    source = LocalFolderSource(settings.local_chapters(data_dir), data_dir)
    chapter = source.take(request, job_id)
    if chapter is None:
        return {"status": "no_manga_available"}
    work = Workspace(data_dir, job_id)
    if work.panels.exists():
        shutil.rmtree(work.panels)  # a retried fetch starts its copy again
    work.panels.mkdir(parents=True)
    names = []
    for index, page in enumerate(chapter.panels(), start=1):
        name = f"panel-{index:03d}{page.suffix.lower()}"
        shutil.copyfile(page, work.panels / name)
        names.append((page.name, name))
    known = chapter.lines()
    work.write(
        "source.json",
        {
            "source": source.name,
            "account_id": account,
            "manga_id": chapter.manga_id,
            "manga_title": chapter.manga_title,
            "chapter": chapter.number,
            "title": f"{chapter.manga_title} - Chương {chapter.number}",
            "credits": chapter.credit_line(),  # never the folder: it is published
            "lines": {new: known[old] for old, new in names if old in known},
            "panels": [new for _, new in names],
        },
    )
    return {
        "status": "success",
        "job_id": job_id,
        "manga_id": chapter.manga_id,
        "manga_title": chapter.manga_title,
    }


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def mangadex_query(settings: PipelineSettings, request: str) -> MangaDexQuery:
    """What to ask MangaDex for: ``next`` uses the account's list; a manga id or a title narrows it."""
    from services.pipeline.providers.fetch.mangadex import (
        MangaDexQuery,  # loads only when MangaDex is the source
    )

    ids, title = tuple(settings.manga_ids), settings.manga_search
    wanted = request.strip()
    if wanted and wanted.lower() != "next":
        ids, title = ((wanted,), None) if _UUID.match(wanted) else ((), wanted)
    return MangaDexQuery(
        manga_ids=ids,
        title=title,
        content_rating=tuple(settings.manga_content_rating),
        original_language=tuple(settings.manga_original_language),
        order=tuple(settings.manga_order.items()),
        language=settings.manga_language,
        data_saver=settings.mangadex_data_saver,
    )


def _from_mangadex(
    settings: PipelineSettings, data_dir: Path, job_id: str, request: str, account: str
) -> dict[str, Any]:
    from services.pipeline.providers.fetch.mangadex import MangaDexSource

    work = Workspace(data_dir, job_id)
    source = MangaDexSource(
        mangadex_query(settings, request),
        data_dir,
        api_url=settings.mangadex_api_url,
        report_url=settings.mangadex_report_url,
    )
    chapter = asyncio.run(source.take(job_id, work.panels))
    if chapter is None:
        return {"status": "no_manga_available"}
    work.write("source.json", {**chapter.source_json(), "account_id": account})
    return {
        "status": "success",
        "job_id": job_id,
        "manga_id": chapter.manga_id,
        "manga_title": chapter.manga_title,
    }
