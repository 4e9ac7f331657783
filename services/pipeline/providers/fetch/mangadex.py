"""The MangaDex fetch source: Vietnamese chapters from the MangaDex API v5, over httpx.

It picks manga (explicit ids, or a search), walks each manga's chapter feed in chapter
order for chapters translated into the wanted language, reserves the first one no video
has taken, and downloads its pages from MangaDex@Home into the video's ``panels`` folder
as ``panel-001.jpg`` ... in reading order, each checked to decode.

A ledger, ``DATA_DIR/mangadex_ledger.json``
(``{chapter_id: {"job_id", "manga_id", "chapter", "taken_at"}}``), written atomically
under an ``fcntl`` lock, records which chapter each video took: no chapter is narrated
twice, and a retried fetch gets its own chapter back. A chapter MangaDex has no pages for
is recorded with an empty ``job_id`` and a ``skipped`` reason, so it is not asked for again.

MangaDex's rules are kept: a truthful User-Agent on every request, about 5 API requests a
second and 40 ``/at-home/server`` calls a minute (client-side, on the injected clock), 429
answers waited out (``X-RateLimit-Retry-After`` is a unix time), and every image served by
a MangaDex@Home node (a host outside ``mangadex.org``) reported to the network, success or
not. A failed page asks ``/at-home/server`` again for a fresh node before retrying. Both
retries (``API_RETRY``, ``PAGE_RETRY``) are the providers' shared ``retry_policy``.

Errors: :class:`MangaDexError` (the API keeps failing, a page cannot be fetched). A
chapter with no pages is skipped, not an error; nothing left yields ``None``.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image

from services.pipeline.providers.retry_policy import RetryEvent, RetryLater, RetryPolicy
from services.scheduler.atomic_file import write_atomic
from services.scheduler.clock import utc_now

__all__ = [
    "API_RETRY",
    "DEFAULT_USER_AGENT",
    "LEDGER",
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

LEDGER = "mangadex_ledger.json"
DEFAULT_USER_AGENT = "video-scheduler/0.1 (self-hosted manga narration; python-httpx)"
STAGE = "FetchManga"

TIMEOUT_SECONDS = 20.0
REPORT_TIMEOUT_SECONDS = 5.0
API_ATTEMPTS = 4  # one request and three retries (429, 5xx, connection errors)
PAGE_ATTEMPTS = 3  # each retry on a fresh MangaDex@Home node
MAX_WAIT_SECONDS = 120.0  # longest single wait for a 429 or a backoff
FEED_PAGE = 100  # the feed allows up to 500; most manga fit in one page of 100
FEED_WINDOW = 10_000  # MangaDex refuses offset + limit beyond this
API_RATE = (5, 1.0)  # requests per seconds, all api_url calls
AT_HOME_RATE = (40, 60.0)  # /at-home/server calls per seconds
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}

# API calls: waits of 1, 2, 4 ... 30 s, or what a 429 asks, never more than MAX_WAIT_SECONDS
API_RETRY = RetryPolicy(
    attempts=API_ATTEMPTS, base=1.0, cap=30.0, max_wait=MAX_WAIT_SECONDS, name="MangaDex API call"
)
# pages: no wait, the next attempt goes to a fresh MangaDex@Home node instead
PAGE_RETRY = RetryPolicy(attempts=PAGE_ATTEMPTS, base=0.0, cap=0.0, name="MangaDex page")

Sleep = Callable[[float], Awaitable[None]]


class MangaDexError(Exception):
    """MangaDex could not give what the fetch needs (after the allowed retries)."""


class _NotFound(MangaDexError):
    """The API answered 404 for an entity (a chapter or manga gone since)."""


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
            "lines": {},
            "panels": list(self.panels),
        }


class RateLimiter:
    """At most ``limit`` acquisitions in any ``period`` seconds (a sliding window).

    Why not ``aiolimiter.AsyncLimiter``: it is a leaky bucket, which lets a burst of
    ``limit`` through and then one more every ``period / limit`` seconds, so one window can
    hold almost twice the limit (``AsyncLimiter(5, 1.0)`` allowed 9 acquisitions in its first
    second; at-home it would be 79 calls in the first minute, where MangaDex allows 40).
    It also reads ``loop.time()`` and wakes waiters with ``loop.call_at``, so it cannot run
    on the injected ``clock`` and ``sleep`` that the tests move. This window is exact, small,
    and needs neither.

    :param limit: acquisitions allowed per window.
    :param period: the window, in seconds of ``clock``.
    :param clock: monotonic seconds (tests pass a fake one).
    :param sleep: how to wait (tests pass one that moves the fake clock).
    """

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float], sleep: Sleep) -> None:
        if limit < 1 or period <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and period > 0, got {limit}/{period}")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait before the next acquisition at ``now`` (0: go)."""
        while self._stamps and self._stamps[0] <= now - self.period:
            self._stamps.popleft()
        if len(self._stamps) < self.limit:
            return 0.0
        return self._stamps[0] + self.period - now

    def _guard(self) -> asyncio.Lock:
        """The lock serialising waiters, one per event loop (a source may outlive a loop)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def acquire(self) -> float:
        """Wait for a slot and take it; returns the seconds waited."""
        waited = 0.0
        async with self._guard():
            while (delay := self.delay(self._clock())) > 0:
                await self._sleep(delay)
                waited += delay
            self._stamps.append(self._clock())
        return waited


def backoff_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based) of a 5xx or a lost connection: 1, 2, 4 ... 30.

    The arithmetic of :data:`API_RETRY`, kept as a name of its own for callers and tests.
    """
    return API_RETRY.delay(attempt)


def retry_after_delay(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds a 429 asks to wait: ``X-RateLimit-Retry-After`` (unix time), else ``Retry-After``."""
    until = headers.get("X-RateLimit-Retry-After")
    if until is not None:
        try:
            return max(0.0, float(until) - now.timestamp())
        except ValueError:
            pass
    seconds = headers.get("Retry-After")
    if seconds is not None:
        try:
            return max(0.0, float(seconds))
        except ValueError:
            pass
    return None


def manga_title(attributes: Mapping[str, Any], language: str = "vi") -> str:
    """A manga's title: in ``language`` (title, then alt titles), else English, else the first."""
    titles = attributes.get("title") or {}
    alt_titles = [t for t in attributes.get("altTitles") or [] if isinstance(t, dict)]
    for lang in (language, "en"):
        if titles.get(lang):
            return str(titles[lang])
        for alt in alt_titles:
            if alt.get(lang):
                return str(alt[lang])
    for value in titles.values():
        if value:
            return str(value)
    return ""


@dataclass(frozen=True)
class _Chapter:
    """A chapter as the feed describes it."""

    id: str
    manga_id: str
    number: str
    title: str
    groups: tuple[str, ...]
    pages: int
    external_url: str | None


def _parse_chapter(data: Mapping[str, Any], manga_id: str = "") -> _Chapter:
    attributes = data.get("attributes") or {}
    relationships = data.get("relationships") or []
    groups = tuple(
        str(rel["attributes"]["name"])
        for rel in relationships
        if rel.get("type") == "scanlation_group" and (rel.get("attributes") or {}).get("name")
    )
    if not manga_id:
        manga_id = next((str(rel["id"]) for rel in relationships if rel.get("type") == "manga"), "")
    return _Chapter(
        id=str(data["id"]),
        manga_id=manga_id,
        number=str(attributes.get("chapter") or ""),
        title=str(attributes.get("title") or ""),
        groups=groups,
        pages=int(attributes.get("pages") or 0),
        external_url=attributes.get("externalUrl"),
    )


def _error_details(body: Any) -> str:
    """The ``errors[].detail`` of a MangaDex error answer, else the body itself."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        found = [str(e.get("detail") or e.get("title")) for e in errors if isinstance(e, dict)]
        if found:
            return "; ".join(found)
    return repr(body)[:200]


def _is_mangadex_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "mangadex.org" or host.endswith(".mangadex.org")


def _image_suffix(content: bytes) -> str:
    """The file suffix of a page that decodes; raises ValueError if it does not."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
        with Image.open(io.BytesIO(content)) as image:
            image.load()  # verify() misses truncated data; a full decode does not
            kind = image.format or ""
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    if kind not in IMAGE_FORMATS:
        raise ValueError(f"unexpected image format {kind!r}")
    return IMAGE_FORMATS[kind]


class _PageFailed(Exception):
    """One attempt at one page failed (why, in the message)."""


def _checked_suffix(url: str, content: bytes) -> str:
    try:
        return _image_suffix(content)
    except ValueError as exc:
        raise _PageFailed(f"{exc} from {url}") from None


@dataclass
class _AtHome:
    """The MangaDex@Home node serving a chapter, refreshed when a page fails."""

    base_url: str
    hash: str
    files: list[str]
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.query = query
        self.data_dir = data_dir
        self.api_url = api_url.rstrip("/")
        self.report_url = report_url
        self.concurrency = concurrency
        self._transport = transport
        self._user_agent = user_agent
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._api_limiter = RateLimiter(*API_RATE, clock=clock, sleep=sleep)
        self._at_home_limiter = RateLimiter(*AT_HOME_RATE, clock=clock, sleep=sleep)

    async def take(self, job_id: str, panels_dir: Path) -> FetchedChapter | None:
        """Reserve a chapter for ``job_id`` and download its pages into ``panels_dir``.

        ``panels_dir`` is emptied first. A job asking again gets the chapter it already
        took. Returns None when every matching chapter is taken.
        """
        log = {"job_id": job_id, "stage": STAGE}
        async with self._client() as client:
            while True:
                picked = await self._owned(client, job_id) or await self._reserve_next(client, job_id)
                if picked is None:
                    logger.info("no MangaDex chapter left to take", extra=log)
                    return None
                chapter, title = picked
                at_home = await self._at_home(client, chapter.id)
                if at_home.files:
                    break
                logger.info(
                    "chapter has no pages on MangaDex; skipping it", extra={**log, "chapter_id": chapter.id}
                )
                self._mark_skipped(chapter, "no pages")
            panels = await self._download(client, job_id, chapter, at_home, panels_dir)
        logger.info(
            "fetched MangaDex chapter",
            extra={**log, "chapter_id": chapter.id, "manga_id": chapter.manga_id, "pages": len(panels)},
        )
        return FetchedChapter(
            manga_id=chapter.manga_id,
            manga_title=title,
            chapter_id=chapter.id,
            chapter=chapter.number,
            chapter_title=chapter.title,
            groups=chapter.groups,
            url=f"https://mangadex.org/chapter/{chapter.id}",
            panels=tuple(panels),
            language=self.query.language,
        )

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"User-Agent": self._user_agent},
            timeout=httpx.Timeout(TIMEOUT_SECONDS),
            transport=self._transport,
            follow_redirects=True,
        )

    # -- the API -----------------------------------------------------------------------------

    async def _get(
        self, client: httpx.AsyncClient, path: str, params: list[tuple[str, Any]] | None = None
    ) -> dict[str, Any]:
        """GET an API path as JSON: rate-limited, 429 waited out, 5xx and lost connections retried."""
        at_home = path.startswith("/at-home/")

        async def once() -> dict[str, Any]:
            if at_home:
                await self._at_home_limiter.acquire()
            await self._api_limiter.acquire()
            try:
                response = await client.get(f"{self.api_url}{path}", params=params)
            except httpx.TransportError as exc:
                raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code == 429:
                wait = retry_after_delay(response.headers, self._now())
                raise RetryLater("429 Too Many Requests", retry_after=wait)
            if response.status_code >= 500:
                raise RetryLater(f"HTTP {response.status_code}")
            return self._json(path, response)

        def log_retry(event: RetryEvent) -> None:
            logger.warning(
                "MangaDex API call failed; retrying in %.1f s (%s)",
                event.delay,
                event.error,
                extra={"stage": STAGE, "path": path, "attempt": event.attempt},
            )

        try:
            return await API_RETRY.acall(once, sleep=self._sleep, on_retry=log_retry)
        except RetryLater as exc:
            raise MangaDexError(f"MangaDex API GET {path} failed {API_ATTEMPTS} times, last: {exc}") from exc

    @staticmethod
    def _json(path: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 404:
            raise _NotFound(f"MangaDex has no {path}")
        try:
            body = response.json()
        except ValueError:
            raise MangaDexError(
                f"MangaDex API GET {path} answered {response.status_code} without JSON"
            ) from None
        if response.status_code >= 400 or not isinstance(body, dict) or body.get("result") == "error":
            raise MangaDexError(
                f"MangaDex API GET {path} answered {response.status_code}: {_error_details(body)}"
            )
        return body

    async def _mangas(self, client: httpx.AsyncClient) -> list[tuple[str, str]]:
        """(manga id, title) to look in, in order."""
        q = self.query
        ratings = [("contentRating[]", r) for r in q.content_rating]
        if q.manga_ids:
            ids = list(dict.fromkeys(q.manga_ids))
            body = await self._get(
                client, "/manga", [*(("ids[]", i) for i in ids), ("limit", len(ids)), *ratings]
            )
            found = {str(d["id"]): manga_title(d.get("attributes") or {}, q.language) for d in body["data"]}
            missing = [i for i in ids if i not in found]
            if missing:
                logger.warning(
                    "MangaDex did not list these manga ids: %s", ", ".join(missing), extra={"stage": STAGE}
                )
            return [(i, found[i] or i) for i in ids if i in found]
        params: list[tuple[str, Any]] = [("limit", q.search_limit), *ratings]
        if q.title:
            params.insert(0, ("title", q.title))
        params += [("originalLanguage[]", lang) for lang in q.original_language]
        params.append(("availableTranslatedLanguage[]", q.language))
        params += [(f"order[{name}]", direction) for name, direction in q.order]
        body = await self._get(client, "/manga", params)
        return [
            (str(d["id"]), manga_title(d.get("attributes") or {}, q.language) or str(d["id"]))
            for d in body["data"]
        ]

    async def _feed(
        self, client: httpx.AsyncClient, manga_id: str, offset: int
    ) -> tuple[list[_Chapter], int]:
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
        body = await self._get(client, f"/manga/{manga_id}/feed", params)
        chapters = [_parse_chapter(d, manga_id) for d in body.get("data") or []]
        return chapters, int(body.get("total") or 0)

    async def _at_home(self, client: httpx.AsyncClient, chapter_id: str) -> _AtHome:
        body = await self._get(client, f"/at-home/server/{chapter_id}")
        chapter = body.get("chapter") or {}
        files = chapter.get("dataSaver" if self.query.data_saver else "data") or []
        return _AtHome(
            base_url=str(body["baseUrl"]).rstrip("/"), hash=str(chapter.get("hash") or ""), files=list(files)
        )

    # -- picking a chapter -------------------------------------------------------------------

    async def _owned(self, client: httpx.AsyncClient, job_id: str) -> tuple[_Chapter, str] | None:
        """The chapter ``job_id`` already took, as MangaDex describes it now (None: none, or gone)."""
        chapter_id = next(
            (cid for cid, entry in self._ledger().items() if entry.get("job_id") == job_id), None
        )
        if chapter_id is None:
            return None
        try:
            body = await self._get(
                client,
                f"/chapter/{chapter_id}",
                [("includes[]", "scanlation_group"), ("includes[]", "manga")],
            )
        except _NotFound:
            logger.warning(
                "the chapter this job took is gone from MangaDex; taking another",
                extra={"job_id": job_id, "stage": STAGE, "chapter_id": chapter_id},
            )
            return None
        data = body["data"]
        chapter = _parse_chapter(data)
        manga = next((rel for rel in data.get("relationships") or [] if rel.get("type") == "manga"), {})
        title = manga_title(manga.get("attributes") or {}, self.query.language)
        if not title:
            body = await self._get(client, f"/manga/{chapter.manga_id}")
            title = manga_title(body["data"].get("attributes") or {}, self.query.language)
        return chapter, title or chapter.manga_id

    async def _reserve_next(self, client: httpx.AsyncClient, job_id: str) -> tuple[_Chapter, str] | None:
        """Reserve the first untaken chapter, manga by manga, feed page by feed page."""
        for manga_id, title in await self._mangas(client):
            offset = 0
            while offset + FEED_PAGE <= FEED_WINDOW:
                chapters, total = await self._feed(client, manga_id, offset)
                for chapter in chapters:
                    if chapter.external_url or chapter.pages == 0:
                        continue
                    if self._reserve(chapter, job_id):
                        logger.info(
                            "reserved MangaDex chapter %s of %s",
                            chapter.number or chapter.title,
                            title,
                            extra={"job_id": job_id, "stage": STAGE, "chapter_id": chapter.id},
                        )
                        return chapter, title
                offset += FEED_PAGE
                if not chapters or offset >= total:
                    break
        return None

    # -- the ledger --------------------------------------------------------------------------

    @contextmanager
    def _locked_ledger(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The ledger under the lock; changes made to it are saved on exit."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / f"{LEDGER}.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            ledger = self._ledger()
            before = json.dumps(ledger, sort_keys=True)
            yield ledger
            if json.dumps(ledger, sort_keys=True) != before:
                text = json.dumps(ledger, ensure_ascii=False, indent=2) + "\n"
                write_atomic(self.data_dir / LEDGER, text.encode("utf-8"))

    def _ledger(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads((self.data_dir / LEDGER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _reserve(self, chapter: _Chapter, job_id: str) -> bool:
        """Take ``chapter`` for ``job_id`` unless it (or its number in that manga) is taken."""
        with self._locked_ledger() as ledger:
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
            ledger[chapter.id] = {
                "job_id": job_id,
                "manga_id": chapter.manga_id,
                "chapter": chapter.number,
                "taken_at": self._now().isoformat(timespec="seconds"),
            }
            return True

    def _mark_skipped(self, chapter: _Chapter, reason: str) -> None:
        """Keep ``chapter`` out of every future pick, owned by no job."""
        with self._locked_ledger() as ledger:
            ledger[chapter.id] = {
                "job_id": "",
                "manga_id": chapter.manga_id,
                "chapter": chapter.number,
                "taken_at": self._now().isoformat(timespec="seconds"),
                "skipped": reason,
            }

    # -- the pages ---------------------------------------------------------------------------

    async def _download(
        self, client: httpx.AsyncClient, job_id: str, chapter: _Chapter, at_home: _AtHome, panels_dir: Path
    ) -> list[str]:
        """Every page into ``panels_dir`` (emptied first); the file names in reading order."""
        if panels_dir.exists():
            shutil.rmtree(panels_dir)
        panels_dir.mkdir(parents=True)
        names: list[str] = [""] * len(at_home.files)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> None:
            async with slots:
                names[index] = await self._page(client, job_id, chapter, at_home, index, panels_dir)

        try:
            async with asyncio.TaskGroup() as tasks:
                for index in range(len(at_home.files)):
                    tasks.create_task(one(index), name=f"mangadex-page-{chapter.id}-{index + 1}")
        except ExceptionGroup as group:
            errors = [e for e in group.exceptions if isinstance(e, MangaDexError)]
            if len(errors) == len(group.exceptions):
                raise errors[0] from None
            raise
        return names

    async def _page(
        self,
        client: httpx.AsyncClient,
        job_id: str,
        chapter: _Chapter,
        at_home: _AtHome,
        index: int,
        panels_dir: Path,
    ) -> str:
        """Page ``index`` saved as ``panel-NNN.<ext>``; a failure retries on a fresh node."""
        filename = at_home.files[index]
        quality = "data-saver" if self.query.data_saver else "data"
        generation = at_home.generation  # the node the last attempt used

        async def once() -> tuple[bytes, str]:
            nonlocal generation
            generation = at_home.generation
            return await self._image(client, f"{at_home.base_url}/{quality}/{at_home.hash}/{filename}")

        def log_failure(attempt: int, error: BaseException) -> None:
            logger.warning(
                "page %d of chapter %s failed (attempt %d): %s",
                index + 1,
                chapter.id,
                attempt,
                error,
                extra={"job_id": job_id, "stage": STAGE, "chapter_id": chapter.id},
            )

        async def fresh_node(event: RetryEvent) -> None:
            log_failure(event.attempt, event.error)
            await self._refresh(client, chapter.id, at_home, generation)

        try:
            content, suffix = await PAGE_RETRY.acall(
                once, sleep=self._sleep, retry_on=_PageFailed, on_retry=fresh_node
            )
        except _PageFailed as exc:
            log_failure(PAGE_ATTEMPTS, exc)
            raise MangaDexError(
                f"page {index + 1} ({filename}) of MangaDex chapter {chapter.id} "
                f"failed {PAGE_ATTEMPTS} times, last: {exc}"
            ) from exc
        name = f"panel-{index + 1:03d}{suffix}"
        (panels_dir / name).write_bytes(content)
        return name

    async def _image(self, client: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
        """One image and its file suffix, reported to MangaDex@Home when a node served it."""
        started = self._clock()
        content, cached = b"", False
        try:
            response = await client.get(url)
            content = response.content
            cached = response.headers.get("X-Cache", "").upper().startswith("HIT")
            if response.status_code != 200:
                raise _PageFailed(f"HTTP {response.status_code} from {url}")
            suffix = await asyncio.to_thread(_checked_suffix, url, content)
        except httpx.HTTPError as exc:
            failure = _PageFailed(f"{type(exc).__name__} from {url}: {exc}")
        except _PageFailed as exc:
            failure = exc
        else:
            await self._report(client, url, True, cached, len(content), started)
            return content, suffix
        await self._report(client, url, False, cached, len(content), started)
        raise failure

    async def _refresh(
        self, client: httpx.AsyncClient, chapter_id: str, at_home: _AtHome, generation: int
    ) -> None:
        """Ask for a fresh node, once for all the pages that failed on the same one."""
        async with at_home.lock:
            if at_home.generation != generation:
                return
            fresh = await self._at_home(client, chapter_id)
            at_home.base_url, at_home.hash = fresh.base_url, fresh.hash or at_home.hash
            at_home.generation += 1

    async def _report(
        self, client: httpx.AsyncClient, url: str, success: bool, cached: bool, size: int, started: float
    ) -> None:
        """Tell MangaDex@Home how a node served an image; never fails the fetch."""
        if _is_mangadex_host(url):
            return
        report = {
            "url": url,
            "success": success,
            "cached": cached,
            "bytes": size,
            "duration": max(0, round((self._clock() - started) * 1000)),
        }
        try:
            response = await client.post(self.report_url, json=report, timeout=REPORT_TIMEOUT_SECONDS)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("MangaDex@Home report failed: %s", exc, extra={"stage": STAGE, "url": url})
