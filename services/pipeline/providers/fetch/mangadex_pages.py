"""The page downloads of the MangaDex source: a chapter's images from MangaDex@Home.

:class:`PageDownloader` saves every page of a chapter into the video's ``panels`` folder as
``panel-001.jpg`` ... in reading order, a few at once, each checked to decode. A failed
page asks ``/at-home/server`` again for a fresh node (once for all the pages that failed on
the same node) and is retried there at once (:data:`PAGE_RETRY`, the providers' shared
``retry_policy``, with no wait). Every image a MangaDex@Home node served (a host outside
``mangadex.org``) is reported to the network, success or not, as MangaDex asks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from services.pipeline.errors import VideoPipelineError
from services.pipeline.providers.fetch.mangadex_client import (
    STAGE,
    AtHome,
    Chapter,
    MangaDexApi,
    MangaDexError,
)
from services.pipeline.providers.fetch.mangadex_limiter import Sleep
from services.pipeline.providers.retry_policy import RetryEvent, RetryPolicy

__all__ = ["IMAGE_FORMATS", "PAGE_ATTEMPTS", "PAGE_RETRY", "REPORT_TIMEOUT_SECONDS", "PageDownloader"]

logger = logging.getLogger(__name__)

REPORT_TIMEOUT_SECONDS = 5.0
PAGE_ATTEMPTS = 3  # each retry on a fresh MangaDex@Home node
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}

# pages: no wait, the next attempt goes to a fresh MangaDex@Home node instead
PAGE_RETRY = RetryPolicy(attempts=PAGE_ATTEMPTS, base=0.0, cap=0.0, name="MangaDex page")


class _PageFailed(VideoPipelineError):
    """One attempt at one page failed (why, in the message)."""


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


def _checked_suffix(url: str, content: bytes) -> str:
    try:
        return _image_suffix(content)
    except ValueError as exc:
        raise _PageFailed(f"{exc} from {url}") from None


class PageDownloader:
    """Downloads a chapter's pages from MangaDex@Home and reports each image served.

    :param api: the source's API client (a fresh node is asked of it).
    :param report_url: the MangaDex@Home report endpoint.
    :param data_saver: the data-saver (smaller) images instead of the originals.
    :param concurrency: pages downloaded at once.
    :param sleep: how to wait between attempts (tests pass a fake).
    :param clock: monotonic seconds, for the report's durations.
    """

    def __init__(
        self,
        api: MangaDexApi,
        *,
        report_url: str,
        data_saver: bool,
        concurrency: int,
        sleep: Sleep,
        clock: Callable[[], float],
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.api = api
        self.report_url = report_url
        self.data_saver = data_saver
        self.concurrency = concurrency
        self._sleep = sleep
        self._clock = clock

    async def download(
        self, http: httpx.AsyncClient, job_id: str, chapter: Chapter, at_home: AtHome, panels_dir: Path
    ) -> list[str]:
        """Every page into ``panels_dir`` (emptied first); the file names in reading order."""
        if panels_dir.exists():
            shutil.rmtree(panels_dir)
        panels_dir.mkdir(parents=True)
        names: list[str] = [""] * len(at_home.files)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> None:
            async with slots:
                names[index] = await self._page(http, job_id, chapter, at_home, index, panels_dir)

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
        http: httpx.AsyncClient,
        job_id: str,
        chapter: Chapter,
        at_home: AtHome,
        index: int,
        panels_dir: Path,
    ) -> str:
        """Page ``index`` saved as ``panel-NNN.<ext>``; a failure retries on a fresh node."""
        filename = at_home.files[index]
        quality = "data-saver" if self.data_saver else "data"
        generation = at_home.generation  # the node the last attempt used

        async def once() -> tuple[bytes, str]:
            nonlocal generation
            generation = at_home.generation
            return await self._image(http, f"{at_home.base_url}/{quality}/{at_home.hash}/{filename}")

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
            await self._refresh(http, chapter.id, at_home, generation)

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

    async def _image(self, http: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
        """One image and its file suffix, reported to MangaDex@Home when a node served it."""
        started = self._clock()
        content, cached = b"", False
        try:
            response = await http.get(url)
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
            await self._report(http, url, True, cached, len(content), started)
            return content, suffix
        await self._report(http, url, False, cached, len(content), started)
        raise failure

    async def _refresh(
        self, http: httpx.AsyncClient, chapter_id: str, at_home: AtHome, generation: int
    ) -> None:
        """Ask for a fresh node, once for all the pages that failed on the same one."""
        async with at_home.lock:
            if at_home.generation != generation:
                return
            fresh = await self.api.at_home(http, chapter_id, data_saver=self.data_saver)
            at_home.base_url, at_home.hash = fresh.base_url, fresh.hash or at_home.hash
            at_home.generation += 1

    async def _report(
        self, http: httpx.AsyncClient, url: str, success: bool, cached: bool, size: int, started: float
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
            response = await http.post(self.report_url, json=report, timeout=REPORT_TIMEOUT_SECONDS)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("MangaDex@Home report failed: %s", exc, extra={"stage": STAGE, "url": url})
