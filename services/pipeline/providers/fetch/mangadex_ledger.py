"""The MangaDex ledger: which chapter each video took, in ``DATA_DIR/mangadex_ledger.json``.

The file is ``{"version": 1, "<chapter_id>": {"job_id", "manga_id", "chapter",
"taken_at"}, ...}``: the chapter ids (MangaDex UUIDs, never ``"version"``) at the top level
beside the format version, so a ledger written before versions is a version-1 ledger as it
stands (``json_records`` reads a missing version as 1 and refuses one it does not know).
Every change is made under an exclusive lock and the file replaced atomically
(``json_records.update_json``), so two fetches at once never take the same chapter.

No chapter is narrated twice (nor the same chapter number of a manga by another group),
a job holds one chapter and a retried fetch gets its own back. A chapter MangaDex has no
pages for is recorded with an empty ``job_id`` and a ``skipped`` reason, so it is not
asked for again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline.json_records import read_json, update_json
from services.pipeline.providers.fetch.mangadex_client import Chapter
from services.scheduler.clock import utc_now

__all__ = ["LEDGER", "LEDGER_VERSION", "MangaDexLedger"]

LEDGER = "mangadex_ledger.json"
LEDGER_VERSION = 1


class MangaDexLedger:
    """The chapters taken from MangaDex, kept in ``data_dir``.

    :param data_dir: where the ledger lives (DATA_DIR).
    :param now: the wall clock (aware UTC), for ``taken_at``.
    """

    def __init__(self, data_dir: Path, *, now: Callable[[], datetime] = utc_now) -> None:
        self.path = data_dir / LEDGER
        self._now = now

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every entry by chapter id (read without the lock: the file is only replaced whole)."""
        return read_json(self.path, version=LEDGER_VERSION)

    def owned_by(self, job_id: str) -> str | None:
        """The id of the chapter ``job_id`` took, if any."""
        return next((cid for cid, entry in self.entries().items() if entry.get("job_id") == job_id), None)

    def reserve(self, chapter: Chapter, job_id: str) -> bool:
        """Take ``chapter`` for ``job_id`` unless it (or its number in that manga) is taken."""

        def take(ledger: dict[str, Any]) -> bool:
            if chapter.id in ledger:
                return False
            if chapter.number and any(
                e.get("job_id")
                and e.get("manga_id") == chapter.manga_id
                and e.get("chapter") == chapter.number
                for e in ledger.values()
            ):
                return False  # the same chapter by another group: not narrated twice
            for cid in [cid for cid, e in ledger.items() if e.get("job_id") == job_id]:
                del ledger[cid]  # a job holds one chapter; its old one is gone from MangaDex
            ledger[chapter.id] = self._entry(chapter, job_id)
            return True

        return update_json(self.path, take, version=LEDGER_VERSION)

    def mark_skipped(self, chapter: Chapter, reason: str) -> None:
        """Keep ``chapter`` out of every future pick, owned by no job."""

        def skip(ledger: dict[str, Any]) -> None:
            ledger[chapter.id] = {**self._entry(chapter, ""), "skipped": reason}

        update_json(self.path, skip, version=LEDGER_VERSION)

    def _entry(self, chapter: Chapter, job_id: str) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "manga_id": chapter.manga_id,
            "chapter": chapter.number,
            "taken_at": self._now().isoformat(timespec="seconds"),
        }
