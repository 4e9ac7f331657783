"""The embedded fetch source: chapters from a local folder (the creator's own, or the sample).

The folder has the layout ``sample_chapter`` writes: ``<root>/<manga_id>/manga.json`` and
``<root>/<manga_id>/chapter-NNNN/panel-*.png`` (+ optional ``chapter.json`` with lines).
A ledger, ``DATA_DIR/fetch_ledger.json`` (``{manga_id: {chapter: job_id}}``), records
which chapters a video has taken, so no chapter is narrated twice; when every chapter is
taken the source has nothing to offer (the fetcher answers ``no_manga_available``). It is
changed under its lock and replaced atomically (``json_records.update_json``), and has no
``"version"`` field yet (see ``LEDGER_VERSION``).

A request picks what to fetch: ``next`` (the first chapter not taken, manga by manga in
name order), a manga id, or a manga title (exact, case-insensitive).

What a video credits (``Chapter.credit_line``): the manga's title and the chapter and,
when ``manga.json`` gives them, its ``author`` and ``credits`` (free text, e.g. the
licence or the artist's page). ``manga.json`` may also say how its pages are read:
``reading_direction`` (``rtl`` / ``ltr``) or ``original_language`` (``ja`` reads rtl). Never where the folder is: the credits end up in the
published description, and a path of the machine has no business on YouTube.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.pipeline.json_records import VERSION_KEY, read_json, update_json

__all__ = ["Chapter", "LocalFolderSource"]

logger = logging.getLogger(__name__)

LEDGER = "fetch_ledger.json"
LEDGER_VERSION = 1
"""The ledger's ``"version"`` (``json_records``): a ledger written before it had one reads
as version 1, unchanged. The key sits beside the manga folders' names, so a manga folder
named ``version`` is skipped, with a warning to rename it."""


@dataclass(frozen=True)
class Chapter:
    """One chapter on disk."""

    manga_id: str
    manga_title: str
    number: int
    folder: Path
    author: str = ""
    credits: str = ""
    reading_direction: str = ""  # manga.json's "reading_direction" (rtl / ltr), if it says
    original_language: str = ""  # manga.json's "original_language" (ja, ko, ...), if it says

    def credit_line(self) -> str:
        """What the video credits: title and chapter, then manga.json's author and credits."""
        parts = [f"Truyện: {self.manga_title} (chương {self.number})"]
        if self.author:
            parts.append(f"Tác giả: {self.author}")
        if self.credits:
            parts.append(self.credits)
        return " | ".join(parts)

    def panels(self) -> list[Path]:
        """Its pages in reading order (file name order)."""
        return sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}
        )

    def lines(self) -> dict[str, dict[str, Any]]:
        """Known speech by page file name, or ``page#n`` for its n-th panel (from chapter.json), if any."""
        try:
            data = json.loads((self.folder / "chapter.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {
            line["panel"]: line
            for line in data.get("lines", [])
            if isinstance(line, dict) and "panel" in line
        }


class LocalFolderSource:
    """Chapters under ``root``, taken once each (ledger in ``data_dir``)."""

    name = "local folder"

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root = root
        self.data_dir = data_dir

    def chapters(self) -> list[Chapter]:
        """Every chapter with at least one panel, manga by manga, in chapter order."""
        found = []
        if not self.root.is_dir():
            return found
        for manga_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if manga_dir.name == VERSION_KEY:  # the ledger's own key: it cannot name a manga
                logger.warning(
                    "skipping the manga folder named 'version': rename it (the ledger uses the name)",
                    extra={"stage": "FetchManga", "folder": str(manga_dir)},
                )
                continue
            try:
                meta = json.loads((manga_dir / "manga.json").read_text(encoding="utf-8"))
            except FileNotFoundError:
                meta = {}
            title = str(meta.get("title") or manga_dir.name)
            author, credits = _text(meta.get("author")), _text(meta.get("credits"))
            direction, language = _text(meta.get("reading_direction")), _text(meta.get("original_language"))
            for chapter_dir in sorted(manga_dir.glob("chapter-*")):
                try:
                    number = int(chapter_dir.name.removeprefix("chapter-"))
                except ValueError:
                    continue
                chapter = Chapter(manga_dir.name, title, number, chapter_dir, author, credits, direction, language)
                if chapter.panels():
                    found.append(chapter)
        return found

    def available(self) -> list[Chapter]:
        """The chapters no video has taken yet (reads the ledger; writes nothing)."""
        ledger = self._ledger()
        return [c for c in self.chapters() if str(c.number) not in ledger.get(c.manga_id, {})]

    def take(self, request: str, job_id: str) -> Chapter | None:
        """Reserve the chapter ``request`` names for ``job_id``; None if nothing is left.

        A job asking again gets the chapter it already took (a retried fetch).
        """
        wanted = request.strip().lower()
        chapters = self.chapters()

        def reserve(ledger: dict[str, Any]) -> Chapter | None:
            for chapter in chapters:
                owner = ledger.get(chapter.manga_id, {}).get(str(chapter.number))
                if owner == job_id:
                    return chapter
                if owner is not None:
                    continue
                if wanted not in ("next", "", chapter.manga_id.lower(), chapter.manga_title.lower()):
                    continue
                ledger.setdefault(chapter.manga_id, {})[str(chapter.number)] = job_id
                return chapter
            return None

        return update_json(self.data_dir / LEDGER, reserve, version=LEDGER_VERSION)

    def _ledger(self) -> dict[str, dict[str, str]]:
        return read_json(self.data_dir / LEDGER, version=LEDGER_VERSION)


def _text(value: Any) -> str:
    """A manga.json credit field as one line: a string, or a list of strings joined."""
    if isinstance(value, list):
        value = ", ".join(str(item).strip() for item in value if str(item).strip())
    return " ".join(str(value).split()) if isinstance(value, str) and value.strip() else ""
