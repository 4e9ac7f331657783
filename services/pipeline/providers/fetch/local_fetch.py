"""The embedded fetch source (FETCH_SOURCE=local): chapters from SAMPLES_DIR."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.fetch.local_source import LocalFolderSource
from services.pipeline.workspace import Workspace

__all__ = ["LocalFetch"]


class LocalFetch:
    """A FetchSource over a local chapters folder (``local_source.LocalFolderSource``)."""

    name: ClassVar[str] = "local"
    new_chapters_appear: ClassVar[bool] = False

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.source = LocalFolderSource(settings.local_chapters(data_dir), data_dir)

    @classmethod
    def describe(cls, settings: Any) -> str:
        return "local folder (SAMPLES_DIR; FETCH_SOURCE=local)"

    def take(self, request: str, account_id: str, work: Workspace) -> dict[str, Any] | None:
        chapter = self.source.take(request, work.job_id)
        if chapter is None:
            return None
        if work.panels.exists():
            shutil.rmtree(work.panels)  # a retried fetch starts its copy again
        work.panels.mkdir(parents=True)
        names = []
        for index, page in enumerate(chapter.panels(), start=1):
            name = f"panel-{index:03d}{page.suffix.lower()}"
            shutil.copyfile(page, work.panels / name)
            names.append((page.name, name))
        known = chapter.lines()
        renamed, lines = dict(names), {}
        for key, line in known.items():  # a line names its page, or one panel of it: "page-01.png#2"
            page, _, place = key.partition("#")
            if page in renamed:
                lines[f"{renamed[page]}#{place}" if place else renamed[page]] = line
        return {
            "source": self.source.name,
            "account_id": account_id,
            "manga_id": chapter.manga_id,
            "manga_title": chapter.manga_title,
            "chapter": chapter.number,
            "title": f"{chapter.manga_title} - Chương {chapter.number}",
            "credits": chapter.credit_line(),  # never the folder: it is published
            "lines": lines,
            "panels": [new for _, new in names],
            **({"reading_direction": chapter.reading_direction} if chapter.reading_direction else {}),
            **({"original_language": chapter.original_language} if chapter.original_language else {}),
        }
