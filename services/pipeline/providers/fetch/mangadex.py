"""The MangaDex fetch source: Vietnamese chapters from the MangaDex API v5, over httpx.

:class:`MangaDexSource` picks manga (explicit ids, or a search), walks each manga's chapter
feed in chapter order for chapters translated into the wanted language, reserves the first
one no video has taken, and downloads its pages from MangaDex@Home into the video's
``panels`` folder as ``panel-001.jpg`` ... in reading order, each checked to decode. It is
built from four parts, each a module of its own beside this one:

- ``mangadex_client``: :class:`MangaDexApi`, every API call (a truthful User-Agent, the
  rate limits, 429 answers waited out, ``API_RETRY``), and the shapes of its answers;
- ``mangadex_limiter``: :class:`RateLimiter`, the sliding window on the injected clock
  (about 5 API requests a second, 40 ``/at-home/server`` calls a minute);
- ``mangadex_ledger``: :class:`MangaDexLedger`, ``DATA_DIR/mangadex_ledger.json``, which
  chapter each video took: no chapter is narrated twice, and a retried fetch gets its own
  chapter back;
- ``mangadex_pages``: :class:`PageDownloader`, the pages from MangaDex@Home, a fresh node
  for a failed page (``PAGE_RETRY``), every image served reported to the network.

The names other code and the tests import from here (the source and its records, the
error, the retry policies, the limiter, the helpers) are re-exported by this module.

Errors: :class:`MangaDexError` (the API keeps failing, a page cannot be fetched). A
chapter with no pages is skipped, not an error; nothing left yields ``None``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from services.pipeline.providers.fetch.mangadex_client import (
    API_RETRY,
    DEFAULT_USER_AGENT,
    MAX_WAIT_SECONDS,
    STAGE,
    Chapter,
    MangaDexApi,
    MangaDexError,
    NotFound,
    backoff_delay,
    manga_title,
    parse_chapter,
    retry_after_delay,
)
from services.pipeline.providers.fetch.mangadex_ledger import LEDGER, MangaDexLedger
from services.pipeline.providers.fetch.mangadex_limiter import RateLimiter, Sleep
from services.pipeline.providers.fetch.mangadex_pages import PAGE_RETRY, PageDownloader
from services.scheduler.clock import utc_now

__all__ = [
    "API_RETRY",
    "DEFAULT_USER_AGENT",
    "LEDGER",
    "MAX_WAIT_SECONDS",
    "PAGE_RETRY",
    "FetchedChapter",
    "MangaDexError",
    "MangaDexQuery",
    "MangaDexSource",
    "RateLimiter",
    "backoff_delay",
    "manga_title",
    "retry_after_delay",
]

logger = logging.getLogger(__name__)

FEED_PAGE = 100  # the feed allows up to 500; most manga fit in one page of 100
FEED_WINDOW = 10_000  # MangaDex refuses offset + limit beyond this


@dataclass(frozen=True)
class MangaDexQuery:
    """Which manga to look in and which chapters to take.

    ``manga_ids`` are tried in order; without them a search (``GET /manga``) by ``title``
    (or, with no title, the most followed manga) restricted to manga with chapters in
    ``language``. ``order`` pairs are ``(field, "asc" | "desc")``.
    """

    manga_ids: tuple[str, ...] = ()
    title: str | None = None
    content_rating: tuple[str, ...] = ("safe", "suggestive")
    original_language: tuple[str, ...] = ()
    order: tuple[tuple[str, str], ...] = (("followedCount", "desc"),)
    search_limit: int = 10
    language: str = "vi"
    data_saver: bool = False


@dataclass(frozen=True)
class FetchedChapter:
    """A chapter whose pages are on disk, with what its video must credit."""

    manga_id: str
    manga_title: str
    chapter_id: str
    chapter: str  # the chapter number as MangaDex writes it; "" for a oneshot
    chapter_title: str
    groups: tuple[str, ...]
    url: str
    panels: tuple[str, ...]
    language: str = "vi"
    original_language: str = ""  # the manga's (MangaDex originalLanguage): ja reads right to left

    @property
    def title(self) -> str:
        """The video's working title."""
        if self.chapter:
            return f"{self.manga_title} - Chương {self.chapter}"
        return f"{self.manga_title} - {self.chapter_title}" if self.chapter_title else self.manga_title

    def credits(self) -> str:
        """A Vietnamese one-liner crediting MangaDex, the translators and the chapter."""
        which = f"chương {self.chapter}" if self.chapter else (self.chapter_title or "oneshot")
        groups = ", ".join(self.groups) or "không rõ"
        return f"Truyện: {self.manga_title} ({which}) | Nhóm dịch: {groups} | Nguồn: MangaDex, {self.url}"

    def source_json(self) -> dict[str, Any]:
        """What the fetcher writes as the workspace's ``source.json``."""
        return {
            "source": "mangadex",
            "manga_id": self.manga_id,
            "manga_title": self.manga_title,
            "chapter": self.chapter,
            "chapter_id": self.chapter_id,
            "title": self.title,
            "credits": self.credits(),
            "groups": list(self.groups),
            "url": self.url,
            "language": self.language,
            "original_language": self.original_language,
            "lines": {},
            "panels": list(self.panels),
        }


class _Manga(NamedTuple):
    """A manga to take chapters from: its id, its title and its original language."""

    manga_id: str
    title: str
    original_language: str


def _manga(data: dict[str, Any], language: str) -> _Manga:
    """A ``/manga`` (or included manga) object as a _Manga; its id stands in for a missing title."""
    attributes = data.get("attributes") or {}
    manga_id = str(data["id"])
    return _Manga(manga_id, manga_title(attributes, language) or manga_id, str(attributes.get("originalLanguage") or ""))


class MangaDexSource:
    """Chapters from MangaDex, taken once each (ledger in ``data_dir``).

    :param query: which manga and chapters.
    :param data_dir: where the ledger lives (DATA_DIR).
    :param api_url: the API's root.
    :param transport: an httpx transport (tests pass ``httpx.MockTransport``); default: network.
    :param user_agent: sent on every request; MangaDex requires a truthful one.
    :param sleep: how to wait (rate limits, 429, backoff); tests pass a fake.
    :param clock: monotonic seconds for the rate limiters and report durations.
    :param now: the wall clock (aware UTC), for ledger times and ``X-RateLimit-Retry-After``.
    :param report_url: the MangaDex@Home report endpoint.
    :param concurrency: pages downloaded at once.
    """

    name = "mangadex"

    def __init__(
        self,
        query: MangaDexQuery,
        data_dir: Path,
        *,
        api_url: str = "https://api.mangadex.org",
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        report_url: str = "https://api.mangadex.network/report",
        concurrency: int = 3,
    ) -> None:
        self.query = query
        self.data_dir = data_dir
        self.api = MangaDexApi(
            api_url, transport=transport, user_agent=user_agent, sleep=sleep, clock=clock, now=now
        )
        self.pages = PageDownloader(
            self.api,
            report_url=report_url,
            data_saver=query.data_saver,
            concurrency=concurrency,
            sleep=sleep,
            clock=clock,
        )
        self.ledger = MangaDexLedger(data_dir, now=now)

    @property
    def api_url(self) -> str:
        """The API's root (no trailing slash)."""
        return self.api.api_url

    @property
    def report_url(self) -> str:
        """The MangaDex@Home report endpoint."""
        return self.pages.report_url

    @property
    def concurrency(self) -> int:
        """Pages downloaded at once."""
        return self.pages.concurrency

    async def take(self, job_id: str, panels_dir: Path) -> FetchedChapter | None:
        """Reserve a chapter for ``job_id`` and download its pages into ``panels_dir``.

        ``panels_dir`` is emptied first. A job asking again gets the chapter it already
        took. Returns None when every matching chapter is taken.
        """
        log = {"job_id": job_id, "stage": STAGE}
        async with self.api.open() as http:
            while True:
                picked = await self._owned(http, job_id) or await self._reserve_next(http, job_id)
                if picked is None:
                    logger.info("no MangaDex chapter left to take", extra=log)
                    return None
                chapter, manga = picked
                at_home = await self.api.at_home(http, chapter.id, data_saver=self.query.data_saver)
                if at_home.files:
                    break
                logger.info(
                    "chapter has no pages on MangaDex; skipping it", extra={**log, "chapter_id": chapter.id}
                )
                self.ledger.mark_skipped(chapter, "no pages")
            panels = await self.pages.download(http, job_id, chapter, at_home, panels_dir)
        logger.info(
            "fetched MangaDex chapter",
            extra={**log, "chapter_id": chapter.id, "manga_id": chapter.manga_id, "pages": len(panels)},
        )
        return FetchedChapter(
            manga_id=chapter.manga_id,
            manga_title=manga.title,
            chapter_id=chapter.id,
            chapter=chapter.number,
            chapter_title=chapter.title,
            groups=chapter.groups,
            url=f"https://mangadex.org/chapter/{chapter.id}",
            panels=tuple(panels),
            language=self.query.language,
            original_language=manga.original_language,
        )

    # -- what to look in ---------------------------------------------------------------------

    async def _mangas(self, http: httpx.AsyncClient) -> list[_Manga]:
        """The manga to look in, in order."""
        q = self.query
        ratings = [("contentRating[]", r) for r in q.content_rating]
        if q.manga_ids:
            ids = list(dict.fromkeys(q.manga_ids))
            body = await self.api.get(
                http, "/manga", [*(("ids[]", i) for i in ids), ("limit", len(ids)), *ratings]
            )
            found = {str(d["id"]): _manga(d, q.language) for d in body["data"]}
            missing = [i for i in ids if i not in found]
            if missing:
                logger.warning(
                    "MangaDex did not list these manga ids: %s", ", ".join(missing), extra={"stage": STAGE}
                )
            return [found[i] for i in ids if i in found]
        params: list[tuple[str, Any]] = [("limit", q.search_limit), *ratings]
        if q.title:
            params.insert(0, ("title", q.title))
        params += [("originalLanguage[]", lang) for lang in q.original_language]
        params.append(("availableTranslatedLanguage[]", q.language))
        params += [(f"order[{name}]", direction) for name, direction in q.order]
        body = await self.api.get(http, "/manga", params)
        return [_manga(d, q.language) for d in body["data"]]

    async def _feed(self, http: httpx.AsyncClient, manga_id: str, offset: int) -> tuple[list[Chapter], int]:
        """One page of a manga's chapters in the query's language, in chapter order; and the total."""
        q = self.query
        params: list[tuple[str, Any]] = [
            ("translatedLanguage[]", q.language),
            ("order[chapter]", "asc"),
            ("includeExternalUrl", 0),
            ("includeFuturePublishAt", 0),
            ("includeEmptyPages", 0),
            ("includes[]", "scanlation_group"),
            *(("contentRating[]", r) for r in q.content_rating),
            ("limit", FEED_PAGE),
            ("offset", offset),
        ]
        body = await self.api.get(http, f"/manga/{manga_id}/feed", params)
        chapters = [parse_chapter(d, manga_id) for d in body.get("data") or []]
        return chapters, int(body.get("total") or 0)

    # -- picking a chapter -------------------------------------------------------------------

    async def _owned(self, http: httpx.AsyncClient, job_id: str) -> tuple[Chapter, _Manga] | None:
        """The chapter ``job_id`` already took, as MangaDex describes it now (None: none, or gone)."""
        chapter_id = self.ledger.owned_by(job_id)
        if chapter_id is None:
            return None
        try:
            body = await self.api.get(
                http,
                f"/chapter/{chapter_id}",
                [("includes[]", "scanlation_group"), ("includes[]", "manga")],
            )
        except NotFound:
            logger.warning(
                "the chapter this job took is gone from MangaDex; taking another",
                extra={"job_id": job_id, "stage": STAGE, "chapter_id": chapter_id},
            )
            return None
        data = body["data"]
        chapter = parse_chapter(data)
        related = next((rel for rel in data.get("relationships") or [] if rel.get("type") == "manga"), {})
        if not manga_title(related.get("attributes") or {}, self.query.language):
            related = (await self.api.get(http, f"/manga/{chapter.manga_id}"))["data"]
        return chapter, _manga({**related, "id": chapter.manga_id}, self.query.language)

    async def _reserve_next(self, http: httpx.AsyncClient, job_id: str) -> tuple[Chapter, _Manga] | None:
        """Reserve the first untaken chapter, manga by manga, feed page by feed page."""
        for manga in await self._mangas(http):
            manga_id, title = manga.manga_id, manga.title
            offset = 0
            while offset + FEED_PAGE <= FEED_WINDOW:
                chapters, total = await self._feed(http, manga_id, offset)
                for chapter in chapters:
                    if chapter.external_url or chapter.pages == 0:
                        continue
                    if self.ledger.reserve(chapter, job_id):
                        logger.info(
                            "reserved MangaDex chapter %s of %s",
                            chapter.number or chapter.title,
                            title,
                            extra={"job_id": job_id, "stage": STAGE, "chapter_id": chapter.id},
                        )
                        return chapter, manga
                offset += FEED_PAGE
                if not chapters or offset >= total:
                    break
        return None
