"""The MangaDex API v5 client of the MangaDex source, and the shapes of its answers.

:class:`MangaDexApi` makes every API call of a fetch: a GET as JSON, with a truthful
User-Agent, held to about 5 requests a second and 40 ``/at-home/server`` calls a minute
(``mangadex_limiter``, on the injected clock), 429 answers waited out
(``X-RateLimit-Retry-After`` is a unix time), and 5xx answers and lost connections retried
by :data:`API_RETRY` (the providers' shared ``retry_policy``). It also asks which
MangaDex@Home node serves a chapter (:class:`AtHome`).

The answers are read into :class:`Chapter` (a chapter as the feed describes it) and
:func:`manga_title`. Errors: :class:`MangaDexError` (the API keeps failing, or refuses),
:class:`NotFound` (a 404: a chapter or manga gone since).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from services.pipeline.errors import VideoPipelineError
from services.pipeline.providers.fetch.mangadex_limiter import RateLimiter, Sleep
from services.pipeline.providers.retry_policy import RetryEvent, RetryLater, RetryPolicy
from services.scheduler.clock import utc_now

__all__ = [
    "API_ATTEMPTS",
    "API_RATE",
    "API_RETRY",
    "AT_HOME_RATE",
    "DEFAULT_USER_AGENT",
    "MAX_WAIT_SECONDS",
    "STAGE",
    "TIMEOUT_SECONDS",
    "AtHome",
    "Chapter",
    "MangaDexApi",
    "MangaDexError",
    "NotFound",
    "backoff_delay",
    "manga_title",
    "parse_chapter",
    "retry_after_delay",
]

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "video-scheduler/0.1 (self-hosted manga narration; python-httpx)"
STAGE = "FetchManga"

TIMEOUT_SECONDS = 20.0
API_ATTEMPTS = 4  # one request and three retries (429, 5xx, connection errors)
MAX_WAIT_SECONDS = 120.0  # longest single wait for a 429 or a backoff
API_RATE = (5, 1.0)  # requests per seconds, all api_url calls
AT_HOME_RATE = (40, 60.0)  # /at-home/server calls per seconds

# API calls: waits of 1, 2, 4 ... 30 s, or what a 429 asks, never more than MAX_WAIT_SECONDS
API_RETRY = RetryPolicy(
    attempts=API_ATTEMPTS, base=1.0, cap=30.0, max_wait=MAX_WAIT_SECONDS, name="MangaDex API call"
)


class MangaDexError(VideoPipelineError):
    """MangaDex could not give what the fetch needs (after the allowed retries)."""


class NotFound(MangaDexError):
    """The API answered 404 for an entity (a chapter or manga gone since)."""


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
class Chapter:
    """A chapter as the feed describes it."""

    id: str
    manga_id: str
    number: str
    title: str
    groups: tuple[str, ...]
    pages: int
    external_url: str | None


def parse_chapter(data: Mapping[str, Any], manga_id: str = "") -> Chapter:
    """A chapter entity of the API (``data`` of ``/chapter/{id}`` or of a feed's list)."""
    attributes = data.get("attributes") or {}
    relationships = data.get("relationships") or []
    groups = tuple(
        str(rel["attributes"]["name"])
        for rel in relationships
        if rel.get("type") == "scanlation_group" and (rel.get("attributes") or {}).get("name")
    )
    if not manga_id:
        manga_id = next((str(rel["id"]) for rel in relationships if rel.get("type") == "manga"), "")
    return Chapter(
        id=str(data["id"]),
        manga_id=manga_id,
        number=str(attributes.get("chapter") or ""),
        title=str(attributes.get("title") or ""),
        groups=groups,
        pages=int(attributes.get("pages") or 0),
        external_url=attributes.get("externalUrl"),
    )


@dataclass
class AtHome:
    """The MangaDex@Home node serving a chapter, refreshed when a page fails."""

    base_url: str
    hash: str
    files: list[str]
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _error_details(body: Any) -> str:
    """The ``errors[].detail`` of a MangaDex error answer, else the body itself."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        found = [str(e.get("detail") or e.get("title")) for e in errors if isinstance(e, dict)]
        if found:
            return "; ".join(found)
    return repr(body)[:200]


class MangaDexApi:
    """The MangaDex API calls of a source, under its rate limits (kept across fetches).

    :param api_url: the API's root.
    :param transport: an httpx transport (tests pass ``httpx.MockTransport``); default: network.
    :param user_agent: sent on every request; MangaDex requires a truthful one.
    :param sleep: how to wait (rate limits, 429, backoff); tests pass a fake.
    :param clock: monotonic seconds for the rate limiters.
    :param now: the wall clock (aware UTC), for ``X-RateLimit-Retry-After``.
    """

    def __init__(
        self,
        api_url: str = "https://api.mangadex.org",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._transport = transport
        self._user_agent = user_agent
        self._sleep = sleep
        self._now = now
        self.api_limiter = RateLimiter(*API_RATE, clock=clock, sleep=sleep)
        self.at_home_limiter = RateLimiter(*AT_HOME_RATE, clock=clock, sleep=sleep)

    def open(self) -> httpx.AsyncClient:
        """The httpx client of one fetch (API calls, pages and reports), to use as a context."""
        return httpx.AsyncClient(
            headers={"User-Agent": self._user_agent},
            timeout=httpx.Timeout(TIMEOUT_SECONDS),
            transport=self._transport,
            follow_redirects=True,
        )

    async def get(
        self, http: httpx.AsyncClient, path: str, params: list[tuple[str, Any]] | None = None
    ) -> dict[str, Any]:
        """GET an API path as JSON: rate-limited, 429 waited out, 5xx and lost connections retried."""
        at_home = path.startswith("/at-home/")

        async def once() -> dict[str, Any]:
            if at_home:
                await self.at_home_limiter.acquire()
            await self.api_limiter.acquire()
            try:
                response = await http.get(f"{self.api_url}{path}", params=params)
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

    async def at_home(self, http: httpx.AsyncClient, chapter_id: str, *, data_saver: bool) -> AtHome:
        """The MangaDex@Home node for ``chapter_id`` and its page files (data-saver ones if asked)."""
        body = await self.get(http, f"/at-home/server/{chapter_id}")
        chapter = body.get("chapter") or {}
        files = chapter.get("dataSaver" if data_saver else "data") or []
        return AtHome(
            base_url=str(body["baseUrl"]).rstrip("/"), hash=str(chapter.get("hash") or ""), files=list(files)
        )

    @staticmethod
    def _json(path: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 404:
            raise NotFound(f"MangaDex has no {path}")
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
