"""The MangaDex fetch source against a fake MangaDex (httpx.MockTransport): no network, no sleeping."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from services.pipeline.providers.fetch import mangadex, mangadex_client, mangadex_pages
from services.pipeline.providers.fetch.mangadex import (
    DEFAULT_USER_AGENT,
    MangaDexError,
    MangaDexQuery,
    MangaDexSource,
    RateLimiter,
    manga_title,
    retry_after_delay,
)
from tests.pipeline import loopback_services as shapes
from tests.pipeline.loopback_services import collection, manga_data

API = "https://api.mangadex.org"
REPORT = "https://api.mangadex.network/report"
NODE_A = "https://abc123.xyz789.mangadex.network:443/token-a"
NODE_B = "https://def456.uvw012.mangadex.network:443/token-b"
UPLOADS = "https://uploads.mangadex.org"
MANGA = "a1c7c817-4e59-43b7-9365-09675a149a6f"
OTHER_MANGA = "32d76d19-8a05-4db0-9fc2-e0b0648fe9d0"
GROUP = "4b1ee8c5-1f3b-4c6a-9d0f-2c9b6f2a7e11"
HASH = "3303dd03ac8d27452cce3f2a882e94b2"
EPOCH = 1_795_000_000.0  # the fake wall clock's start, unix seconds


def page_url(node: str, file: str, quality: str = "data") -> str:
    """A page's URL as httpx sends it (the default :443 dropped)."""
    return str(httpx.URL(f"{node}/{quality}/{HASH}/{file}"))


def image_bytes(kind: str = "PNG", colour: str = "white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 16), colour).save(out, kind)
    return out.getvalue()


class FakeTime:
    """Monotonic and wall clocks that only move when the source sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(EPOCH + self.t, timezone.utc)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def chapter_data(
    chapter_id: str,
    number: str | None,
    *,
    manga_id: str = MANGA,
    pages: int = 3,
    external_url: str | None = None,
    title: str | None = None,
    group: str = "Nhóm Dịch Mây",
) -> dict[str, Any]:
    """A chapter as /manga/{id}/feed returns it with includes[]=scanlation_group."""
    return shapes.chapter_data(
        chapter_id,
        number,
        manga_id=manga_id,
        group_id=GROUP,
        group=group,
        pages=pages,
        external_url=external_url,
        title=title,
    )


@dataclass
class FakeMangaDex:
    """The API, two MangaDex@Home nodes and the report endpoint, recording every request."""

    mangas: list[dict[str, Any]] = field(
        default_factory=lambda: [manga_data(MANGA, "Dragon Boy", "Cậu bé rồng")]
    )
    feeds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=lambda: [NODE_A])  # handed out by /at-home/server in turn
    files: list[str] = field(default_factory=lambda: ["x1-aa.png", "x2-bb.jpg", "x3-cc.png"])
    broken: dict[str, str] = field(default_factory=dict)  # page_url(node, file) -> "500" | "garbage"
    responses: list[httpx.Response] = field(default_factory=list)  # canned answers served first
    report_status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    at_home_calls: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(REPORT):
            self.reports.append(json.loads(request.content))
            return httpx.Response(self.report_status, json={"result": "ok"})
        if url.startswith(API):
            if self.responses:
                return self.responses.pop(0)
            return self.api(request)
        return self.image(url)

    def api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = request.url.params
        if path == "/manga":
            data = self.mangas
            if ids := params.get_list("ids[]"):
                data = [m for m in self.mangas if m["id"] in ids]
            return httpx.Response(200, json=collection(data, limit=10, offset=0, total=len(data)))
        if path.startswith("/manga/") and path.endswith("/feed"):
            chapters = self.feeds.get(path.split("/")[2], [])
            limit, offset = int(params["limit"]), int(params["offset"])
            page = chapters[offset : offset + limit]
            return httpx.Response(200, json=collection(page, limit=limit, offset=offset, total=len(chapters)))
        if path.startswith("/at-home/server/"):
            node = self.nodes[min(self.at_home_calls, len(self.nodes) - 1)]
            self.at_home_calls += 1
            chapter = {"hash": HASH, "data": self.files, "dataSaver": self.files}
            return httpx.Response(200, json={"result": "ok", "baseUrl": node, "chapter": chapter})
        if path.startswith("/chapter/"):
            wanted = path.split("/")[2]
            for manga_id, chapters in self.feeds.items():
                for chapter in chapters:
                    if chapter["id"] == wanted:
                        data = json.loads(json.dumps(chapter))
                        manga = next(m for m in self.mangas if m["id"] == manga_id)
                        for rel in data["relationships"]:
                            if rel["type"] == "manga":
                                rel["attributes"] = manga["attributes"]
                        return httpx.Response(200, json={"result": "ok", "response": "entity", "data": data})
            return httpx.Response(
                404,
                json={"result": "error", "errors": [{"status": 404, "title": "not_found_http_exception"}]},
            )
        return httpx.Response(400, json={"result": "error", "errors": [{"detail": f"no route {path}"}]})

    def image(self, url: str) -> httpx.Response:
        file = url.rpartition("/")[2]
        trouble = self.broken.get(url)
        if trouble == "500":
            return httpx.Response(500, text="upstream error")
        if trouble == "garbage":
            return httpx.Response(200, content=b"\x89PNG\r\n\x1a\nnot really", headers={"X-Cache": "MISS"})
        kind = "JPEG" if file.endswith(".jpg") else "PNG"
        return httpx.Response(200, content=image_bytes(kind), headers={"X-Cache": "HIT from node"})

    def sent(self, path_part: str) -> list[httpx.Request]:
        return [r for r in self.requests if path_part in r.url.path]


class SlowTransport(httpx.AsyncBaseTransport):
    """The fake behind an async transport that yields to the loop, counting images in flight."""

    def __init__(self, fake: FakeMangaDex) -> None:
        self.fake = fake
        self.in_flight = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        image = request.url.host.endswith("mangadex.network") and request.method == "GET"
        self.in_flight += image
        self.most = max(self.most, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)  # lets the other page tasks run; no real waiting
        self.in_flight -= image
        return self.fake.handle(request)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fake() -> FakeMangaDex:
    return FakeMangaDex(
        feeds={
            MANGA: [
                chapter_data("c-0001", "1", title="Khởi đầu"),
                chapter_data("c-0002", "2"),
                chapter_data("c-0003", "3"),
            ]
        }
    )


def source_for(
    fake: FakeMangaDex,
    fake_time: FakeTime,
    data_dir: Path,
    query: MangaDexQuery | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int = 3,
) -> MangaDexSource:
    return MangaDexSource(
        query or MangaDexQuery(manga_ids=(MANGA,)),
        data_dir,
        transport=transport or fake.transport(),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        now=fake_time.now,
        concurrency=concurrency,
    )


async def test_takes_the_first_chapter_in_reading_order(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    panels = tmp_path / "work" / "job-1" / "panels"
    panels.mkdir(parents=True)
    (panels / "stale.png").write_bytes(b"left by an earlier try")
    got = await source_for(fake, fake_time, tmp_path / "data").take("job-1", panels)

    assert got is not None
    assert (got.manga_id, got.chapter_id, got.chapter, got.manga_title) == (
        MANGA,
        "c-0001",
        "1",
        "Cậu bé rồng",
    )
    assert got.panels == ("panel-001.png", "panel-002.jpg", "panel-003.png")
    assert sorted(p.name for p in panels.iterdir()) == list(got.panels)
    for name, kind in zip(got.panels, ("PNG", "JPEG", "PNG"), strict=True):
        with Image.open(panels / name) as image:
            assert image.format == kind
    page_urls = [
        str(r.url) for r in fake.requests if r.url.host.endswith("mangadex.network") and r.method == "GET"
    ]
    assert page_urls == [page_url(NODE_A, f) for f in fake.files]

    source = got.source_json()
    assert source["source"] == "mangadex"
    assert source["title"] == "Cậu bé rồng - Chương 1"
    assert source["url"] == "https://mangadex.org/chapter/c-0001"
    assert source["groups"] == ["Nhóm Dịch Mây"]
    assert source["language"] == "vi"
    assert source["original_language"] == "ja"  # the manga's: its pages are cut right to left
    assert source["lines"] == {}
    assert source["panels"] == list(got.panels)
    for credited in ("MangaDex", "Nhóm Dịch Mây", "https://mangadex.org/chapter/c-0001"):
        assert credited in source["credits"]

    (feed,) = fake.sent("/feed")
    params = feed.url.params
    assert params.get_list("translatedLanguage[]") == ["vi"]
    assert params["order[chapter]"] == "asc"
    assert params["includeExternalUrl"] == "0"
    assert params["includeFuturePublishAt"] == "0"
    assert params.get_list("includes[]") == ["scanlation_group"]
    assert params.get_list("contentRating[]") == ["safe", "suggestive"]
    assert all(r.headers["User-Agent"] == DEFAULT_USER_AGENT for r in fake.requests)
    assert fake.reports and all(r["success"] and r["cached"] and r["bytes"] > 0 for r in fake.reports)
    assert {str(httpx.URL(r["url"])) for r in fake.reports} == set(page_urls)

    ledger = json.loads((tmp_path / "data" / "mangadex_ledger.json").read_text(encoding="utf-8"))
    assert ledger == {
        "version": 1,
        "c-0001": {
            "job_id": "job-1",
            "manga_id": MANGA,
            "chapter": "1",
            "taken_at": fake_time.now().isoformat(timespec="seconds"),
        },
    }


async def test_ledger_gives_each_job_its_own_chapter(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    source = source_for(fake, fake_time, tmp_path / "data")
    first = await source.take("job-1", tmp_path / "p1")
    second = await source.take("job-2", tmp_path / "p2")
    again = await source.take("job-1", tmp_path / "p1")
    assert (first.chapter_id, second.chapter_id, again.chapter_id) == ("c-0001", "c-0002", "c-0001")
    # a job asking again finds its chapter through /chapter/{id}: the manga's language comes with it
    assert first.original_language == again.original_language == "ja"
    assert again.chapter_title == "Khởi đầu" and again.groups == ("Nhóm Dịch Mây",)
    assert again.manga_title == "Cậu bé rồng"  # rebuilt from /chapter/{id} with includes[]=manga
    assert sorted(p.name for p in (tmp_path / "p1").iterdir()) == list(again.panels)

    third = await source.take("job-3", tmp_path / "p3")
    assert third.chapter_id == "c-0003"
    assert await source.take("job-4", tmp_path / "p4") is None
    ledger = json.loads((tmp_path / "data" / "mangadex_ledger.json").read_text(encoding="utf-8"))
    assert ledger.pop("version") == 1
    assert {cid: e["job_id"] for cid, e in ledger.items()} == {
        "c-0001": "job-1",
        "c-0002": "job-2",
        "c-0003": "job-3",
    }


async def test_a_ledger_written_before_versions_is_read_and_kept(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = {  # the ledger as the release before wrote it: no "version"
        "c-0001": {
            "job_id": "job-1",
            "manga_id": MANGA,
            "chapter": "1",
            "taken_at": "2026-01-05T01:00:00+00:00",
        },
        "c-0002": {
            "job_id": "",
            "manga_id": MANGA,
            "chapter": "2",
            "taken_at": "2026-01-05T01:00:00+00:00",
            "skipped": "no pages",
        },
    }
    (data / "mangadex_ledger.json").write_text(json.dumps(old, indent=2), encoding="utf-8")
    source = source_for(fake, fake_time, data)
    assert (await source.take("job-1", tmp_path / "p1")).chapter_id == "c-0001"  # its own, back
    assert (await source.take("job-2", tmp_path / "p2")).chapter_id == "c-0003"  # 1 taken, 2 skipped
    ledger = json.loads((data / "mangadex_ledger.json").read_text(encoding="utf-8"))
    assert list(ledger) == ["version", "c-0001", "c-0002", "c-0003"]
    assert ledger["version"] == 1 and {k: ledger[k] for k in old} == old
    assert ledger["c-0003"]["job_id"] == "job-2"


async def test_a_ledger_of_a_newer_version_is_refused(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    newer = '{"version": 2, "chapters": {}}'
    (data / "mangadex_ledger.json").write_text(newer, encoding="utf-8")
    with pytest.raises(ValueError, match="mangadex_ledger.json has format version 2; this scheduler reads"):
        await source_for(fake, fake_time, data).take("job-1", tmp_path / "p1")
    assert (data / "mangadex_ledger.json").read_text(encoding="utf-8") == newer
    assert not fake.sent("/at-home/")


async def test_external_empty_and_duplicate_chapters_are_skipped(fake_time: FakeTime, tmp_path: Path) -> None:
    fake = FakeMangaDex(
        feeds={
            MANGA: [
                chapter_data("c-ext", "1", external_url="https://mangaplus.shueisha.co.jp/viewer/1", pages=0),
                chapter_data("c-zero", "1", pages=0),
                chapter_data("c-one", "1"),
                chapter_data("c-one-other-group", "1", group="Nhóm Khác"),
                chapter_data("c-two", "2"),
            ]
        }
    )
    source = source_for(fake, fake_time, tmp_path / "data")
    assert (await source.take("job-1", tmp_path / "p1")).chapter_id == "c-one"
    assert (
        await source.take("job-2", tmp_path / "p2")
    ).chapter_id == "c-two"  # chapter 1 is narrated already
    assert await source.take("job-3", tmp_path / "p3") is None
    assert [r.url.path for r in fake.sent("/at-home/")] == ["/at-home/server/c-one", "/at-home/server/c-two"]


async def test_a_chapter_without_pages_on_at_home_is_skipped_for_good(
    fake_time: FakeTime, tmp_path: Path
) -> None:
    fake = FakeMangaDex(feeds={MANGA: [chapter_data("c-0001", "1")]}, files=[])
    source = source_for(fake, fake_time, tmp_path / "data")
    assert await source.take("job-1", tmp_path / "p1") is None
    assert await source.take("job-2", tmp_path / "p2") is None
    assert fake.at_home_calls == 1
    ledger = json.loads((tmp_path / "data" / "mangadex_ledger.json").read_text(encoding="utf-8"))
    assert ledger["c-0001"]["job_id"] == "" and ledger["c-0001"]["skipped"] == "no pages"


async def test_a_429_is_waited_out_then_retried(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    retry_at = str(int(EPOCH) + 7)
    fake.responses = [
        httpx.Response(
            429,
            json={"result": "error", "errors": [{"status": 429, "title": "Too Many Requests"}]},
            headers={
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Retry-After": retry_at,
            },
        )
    ]
    got = await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")
    assert got is not None and got.chapter_id == "c-0001"
    assert fake_time.sleeps[0] == pytest.approx(7.0)
    assert len(fake.sent("/manga")) >= 2  # the refused /manga call was made again


async def test_5xx_is_retried_with_backoff_then_gives_up(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.responses = [httpx.Response(503, text="Service Unavailable") for _ in range(4)]
    with pytest.raises(MangaDexError, match=r"GET /manga failed 4 times, last: HTTP 503"):
        await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")
    assert fake_time.sleeps == [1.0, 2.0, 4.0]


async def test_api_and_page_retries_log_as_before(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.responses = [httpx.Response(502, text="Bad Gateway")]
    fake.nodes = [NODE_A, NODE_B]
    fake.broken = {page_url(NODE_A, "x1-aa.png"): "500"}
    with caplog.at_level(logging.WARNING):
        got = await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")
    assert got is not None and fake.at_home_calls == 2
    ours = (mangadex.__name__, mangadex_client.__name__, mangadex_pages.__name__)
    api, page = (r for r in caplog.records if r.name in ours)
    assert (api.name, page.name) == (mangadex_client.__name__, mangadex_pages.__name__)
    assert api.getMessage() == "MangaDex API call failed; retrying in 1.0 s (HTTP 502)"
    assert (api.stage, api.path, api.attempt) == ("FetchManga", "/manga", 1)
    assert page.getMessage().startswith("page 1 of chapter c-0001 failed (attempt 1): HTTP 500 from ")
    assert (page.job_id, page.chapter_id) == ("job-1", "c-0001")
    assert 1.0 in fake_time.sleeps and 0.0 not in fake_time.sleeps  # a page retry does not wait


async def test_failing_node_gets_a_fresh_server_and_is_reported(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.nodes = [NODE_A, NODE_B]
    fake.broken = {page_url(NODE_A, "x2-bb.jpg"): "500", page_url(NODE_A, "x3-cc.png"): "500"}
    fake.report_status = 500  # a failing report never fails the fetch
    source = source_for(fake, fake_time, tmp_path / "data", transport=SlowTransport(fake))
    got = await source.take("job-1", tmp_path / "p")  # pages 2 and 3 are in flight on node A together

    assert got is not None and got.panels == ("panel-001.png", "panel-002.jpg", "panel-003.png")
    assert fake.at_home_calls == 2  # one refresh, shared by the two pages that failed on node A
    fetched = [str(r.url) for r in fake.requests if r.method == "GET" and "mangadex.network" in str(r.url)]
    assert page_url(NODE_B, "x2-bb.jpg") in fetched and page_url(NODE_B, "x3-cc.png") in fetched
    failed = sorted(r["url"] for r in fake.reports if not r["success"])
    assert failed == [f"{NODE_A}/data/{HASH}/x2-bb.jpg", f"{NODE_A}/data/{HASH}/x3-cc.png"]
    for name in got.panels:
        with Image.open(tmp_path / "p" / name) as image:
            image.load()


async def test_an_undecodable_page_counts_as_failed(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.nodes = [NODE_A, NODE_B]
    fake.broken = {page_url(NODE_A, "x1-aa.png"): "garbage"}
    got = await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")

    assert got is not None and got.panels[0] == "panel-001.png"
    with Image.open(tmp_path / "p" / "panel-001.png") as image:
        image.load()
    assert fake.at_home_calls == 2
    (failed,) = [r for r in fake.reports if not r["success"]]
    assert failed["url"] == f"{NODE_A}/data/{HASH}/x1-aa.png"
    assert failed["bytes"] > 0 and failed["cached"] is False and isinstance(failed["duration"], int)


async def test_mangadex_org_hosts_are_not_reported(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.nodes = [UPLOADS]
    got = await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")
    assert got is not None and len(got.panels) == 3
    assert fake.reports == []


async def test_a_page_that_never_arrives_names_the_chapter_and_page(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.nodes = [NODE_A, NODE_B]
    fake.broken = {page_url(NODE_A, "x2-bb.jpg"): "500", page_url(NODE_B, "x2-bb.jpg"): "garbage"}
    with pytest.raises(
        MangaDexError, match=r"page 2 \(x2-bb\.jpg\) of MangaDex chapter c-0001 failed 3 times"
    ):
        await source_for(fake, fake_time, tmp_path / "data").take("job-1", tmp_path / "p")
    assert len([r for r in fake.reports if not r["success"]]) == 3


async def test_pages_download_concurrently_but_bounded(
    fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path
) -> None:
    fake.files = [f"x{n}-p.png" for n in range(1, 9)]
    transport = SlowTransport(fake)
    source = source_for(fake, fake_time, tmp_path / "data", transport=transport, concurrency=3)
    got = await source.take("job-1", tmp_path / "p")
    assert got is not None and got.panels == tuple(f"panel-{n:03d}.png" for n in range(1, 9))
    assert transport.most == 3


async def test_data_saver_pages(fake: FakeMangaDex, fake_time: FakeTime, tmp_path: Path) -> None:
    query = MangaDexQuery(manga_ids=(MANGA,), data_saver=True)
    await source_for(fake, fake_time, tmp_path / "data", query).take("job-1", tmp_path / "p")
    pages = [
        r.url.path for r in fake.requests if r.url.host.endswith("mangadex.network") and r.method == "GET"
    ]
    assert pages and all(f"/data-saver/{HASH}/" in p for p in pages)


async def test_search_by_title_with_filters(fake_time: FakeTime, tmp_path: Path) -> None:
    fake = FakeMangaDex(
        mangas=[manga_data(OTHER_MANGA, "Empty One"), manga_data(MANGA, "Dragon Boy")],
        feeds={MANGA: [chapter_data("c-0001", "1")]},
    )
    query = MangaDexQuery(
        title="dragon",
        content_rating=("safe",),
        original_language=("ja", "ko"),
        order=(("followedCount", "desc"), ("latestUploadedChapter", "desc")),
        search_limit=5,
    )
    got = await source_for(fake, fake_time, tmp_path / "data", query).take("job-1", tmp_path / "p")
    assert got is not None and (got.manga_id, got.manga_title) == (MANGA, "Dragon Boy")
    (search,) = [r for r in fake.requests if r.url.path == "/manga"]
    params = search.url.params
    assert params["title"] == "dragon"
    assert params.get_list("contentRating[]") == ["safe"]
    assert params.get_list("originalLanguage[]") == ["ja", "ko"]
    assert params.get_list("availableTranslatedLanguage[]") == ["vi"]
    assert params["order[followedCount]"] == "desc"
    assert params["order[latestUploadedChapter]"] == "desc"
    assert params["limit"] == "5"
    assert [r.url.path for r in fake.sent("/feed")] == [f"/manga/{OTHER_MANGA}/feed", f"/manga/{MANGA}/feed"]


async def test_explicit_ids_keep_their_order(fake_time: FakeTime, tmp_path: Path) -> None:
    fake = FakeMangaDex(
        mangas=[manga_data(MANGA, "Dragon Boy"), manga_data(OTHER_MANGA, "Second")],
        feeds={
            MANGA: [chapter_data("c-0001", "1")],
            OTHER_MANGA: [chapter_data("o-0001", "1", manga_id=OTHER_MANGA)],
        },
    )
    query = MangaDexQuery(manga_ids=(OTHER_MANGA, MANGA))
    got = await source_for(fake, fake_time, tmp_path / "data", query).take("job-1", tmp_path / "p")
    assert (got.manga_id, got.manga_title, got.chapter_id) == (OTHER_MANGA, "Second", "o-0001")
    (listing,) = [r for r in fake.requests if r.url.path == "/manga"]
    assert listing.url.params.get_list("ids[]") == [OTHER_MANGA, MANGA]


async def test_feed_is_paged(fake_time: FakeTime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mangadex, "FEED_PAGE", 2)
    fake = FakeMangaDex(feeds={MANGA: [chapter_data(f"c-{n}", str(n)) for n in range(1, 6)]})
    source = source_for(fake, fake_time, tmp_path / "data")
    taken = [(await source.take(f"job-{n}", tmp_path / f"p{n}")) for n in range(1, 7)]
    assert [t.chapter_id if t else None for t in taken] == ["c-1", "c-2", "c-3", "c-4", "c-5", None]
    offsets = [r.url.params["offset"] for r in fake.sent("/feed")]
    assert offsets[-3:] == ["0", "2", "4"]


async def test_rate_limiter_spaces_calls_on_a_fake_clock(fake_time: FakeTime) -> None:
    api = RateLimiter(5, 1.0, clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(12):
        await api.acquire()
    assert sum(fake_time.sleeps) == pytest.approx(2.0)

    at_home = RateLimiter(40, 60.0, clock=fake_time.clock, sleep=fake_time.sleep)
    before = fake_time.t
    for _ in range(40):
        assert await at_home.acquire() == 0
    assert await at_home.acquire() == pytest.approx(60.0)
    assert fake_time.t - before == pytest.approx(60.0)


async def test_api_calls_are_held_to_five_a_second(fake_time: FakeTime, tmp_path: Path) -> None:
    fake = FakeMangaDex(
        feeds={MANGA: [chapter_data(f"c-{n}", str(n)) for n in range(1, 4)]}, files=["x1-aa.png"]
    )
    source = source_for(fake, fake_time, tmp_path / "data")
    for n in range(1, 4):  # 3 takes x 3 API calls (/manga, /feed, /at-home) = 9 calls
        await source.take(f"job-{n}", tmp_path / f"p{n}")
    assert sum(fake_time.sleeps) == pytest.approx(1.0)


def test_retry_after_headers() -> None:
    now = datetime.fromtimestamp(EPOCH, timezone.utc)
    assert retry_after_delay({"X-RateLimit-Retry-After": str(int(EPOCH) + 30)}, now) == 30
    assert retry_after_delay({"X-RateLimit-Retry-After": str(int(EPOCH) - 5)}, now) == 0
    assert retry_after_delay({"Retry-After": "12"}, now) == 12
    assert retry_after_delay({}, now) is None


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"title": {"en": "Dragon Boy"}, "altTitles": [{"vi": "Cậu bé rồng"}]}, "Cậu bé rồng"),
        ({"title": {"vi": "Rồng", "en": "Dragon"}}, "Rồng"),
        ({"title": {"en": "Dragon Boy"}, "altTitles": [{"ja": "ドラゴン"}]}, "Dragon Boy"),
        ({"title": {"ja-ro": "Doragon Bōi"}, "altTitles": []}, "Doragon Bōi"),
    ],
    ids=["vi-alt-title", "vi-title", "english", "first-title"],
)
def test_manga_title(attributes: dict[str, Any], expected: str) -> None:
    assert manga_title(attributes, "vi") == expected


def test_oneshot_source_json() -> None:
    chapter = mangadex.FetchedChapter(
        manga_id=MANGA,
        manga_title="Dragon Boy",
        chapter_id="c-0001",
        chapter="",
        chapter_title="Oneshot: Lửa",
        groups=(),
        url="https://mangadex.org/chapter/c-0001",
        panels=("panel-001.png",),
    )
    source = chapter.source_json()
    assert source["title"] == "Dragon Boy - Oneshot: Lửa"
    assert source["chapter"] == ""
    assert "MangaDex" in source["credits"] and urlsplit(source["url"]).hostname == "mangadex.org"


async def test_a_korean_original_is_recorded_as_such(fake_time: FakeTime, tmp_path: Path) -> None:
    korean = manga_data(MANGA, "Sky Tower")
    korean["attributes"]["originalLanguage"] = "ko"
    fake = FakeMangaDex(mangas=[korean], feeds={MANGA: [chapter_data("c-0001", "1")]})
    got = await source_for(fake, fake_time, tmp_path / "data", MangaDexQuery(title="Sky")).take("job-1", tmp_path / "p")
    assert got is not None and got.source_json()["original_language"] == "ko"
