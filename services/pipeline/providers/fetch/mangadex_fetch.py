"""The MangaDex fetch source (FETCH_SOURCE=mangadex): chapters from the MangaDex API v5."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.fetch.mangadex import MangaDexQuery, MangaDexSource
from services.pipeline.workspace import Workspace

__all__ = ["MangaDexFetch", "mangadex_query"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def mangadex_query(settings: Any, request: str) -> MangaDexQuery:
    """What to ask MangaDex for: ``next`` uses the account's list; a manga id or a title narrows it."""
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


class MangaDexFetch:
    """A FetchSource over ``mangadex.MangaDexSource`` (run to the end in the stage's thread)."""

    name: ClassVar[str] = "mangadex"
    new_chapters_appear: ClassVar[bool] = True

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir

    @classmethod
    def describe(cls, settings: Any) -> str:
        if settings.manga_ids:
            which = f"{len(settings.manga_ids)} manga id(s) from MANGA_IDS"
        elif settings.manga_search:
            which = f"search {settings.manga_search!r}"
        else:
            which = "no MANGA_IDS or MANGA_SEARCH: nothing to fetch"
        return f"mangadex at {settings.mangadex_api_url}, {which}, chapters in {settings.manga_language}"

    def take(self, request: str, account_id: str, work: Workspace) -> dict[str, Any] | None:
        source = MangaDexSource(
            mangadex_query(self.settings, request),
            self.data_dir,
            api_url=self.settings.mangadex_api_url,
            report_url=self.settings.mangadex_report_url,
        )
        chapter = asyncio.run(source.take(work.job_id, work.panels))
        if chapter is None:
            return None
        return {**chapter.source_json(), "account_id": account_id}
