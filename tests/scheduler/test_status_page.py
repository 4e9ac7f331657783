"""The status page in a real browser (Debian's chromium, driven by playwright) against a real daemon.

The daemon is ``run_scheduler.py run`` on a tmp data dir (API_PORT=0, DAILY_QUOTA=3) with a
published video and a failed one already in its files. The tests log in with the token of
``DATA_DIR/api_token``, read the page, and press its buttons; what a button did is checked
through the HTTP API, not through the page. Screenshots of the logged-in page go to
``test-artifacts/status-page.png`` and ``status-page-phone.png`` (390 px wide).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from services.pipeline.stages.quota import VIETNAM_TZ
from services.scheduler.clock import load_timezone
from services.scheduler.lock import read_holder
from services.scheduler.models import ScheduledJob
from services.scheduler.status_page import jobs_overview, one_line
from services.scheduler.storage import JobStorage
from tests.conftest import SEALED_ENV

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN_KEY = "video-scheduler.api-token"
SECRET = "s3cr3t-query-value"

# The daemon as run_scheduler.py runs it. Until services/scheduler/api.py includes the
# status router itself, the app it builds gets it here, guarded by the app's own token check.
LAUNCH = """
import sys
from services.scheduler import daemon
from services.scheduler.status_page import status_router

built = daemon.create_app

def create_app(scheduler, token):
    app = built(scheduler, token)
    if not any(getattr(route, "path", None) == "/api/v1/status" for route in app.routes):
        auth = next(route.dependencies for route in app.routes if getattr(route, "path", None) == "/api/v1/jobs")
        app.include_router(status_router(scheduler, auth))
    return app

daemon.create_app = create_app
from services.pipeline.cli_entry import main
sys.exit(main(["run"]))
"""


@dataclass
class Daemon:
    url: str
    token: str
    proc: subprocess.Popen
    log: Path

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def _seed(data_dir: Path) -> dict[str, str]:
    """A video published today, one failed today (its error multi-line, with a secret), in the files."""
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(now.astimezone(VIETNAM_TZ).date(), datetime.min.time(), VIETNAM_TZ)
    due = max(now - timedelta(minutes=1), midnight)
    storage = JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh"))
    base = {"account_id": "default", "kind": "pipeline.video", "scheduled_time": due, "created_at": due,
            "updated_at": now, "started_at": due, "completed_at": now}
    published = ScheduledJob.model_validate({
        **base, "job_id": "video-published-1", "content": "Thám tử lừng danh", "status": "completed", "stage": "completed",
        "result": {"status": "published", "youtube_url": "https://www.youtube.com/watch?v=abc123XYZ",
                   "manga_title": "Thám tử lừng danh — chương 12"},
    })
    failed = ScheduledJob.model_validate({
        **base, "job_id": "video-failed-1", "content": "next", "status": "failed", "stage": "failed", "retry_count": 3,
        "error": f"WaitForUpload failed with YouTubeError: 403 from https://upload.example/v?access_token={SECRET}\n"
                 "Traceback (most recent call last): ...",
    })
    for job in (published, failed):
        storage.put(job)
    storage.flush()
    return {"published": published.job_id, "failed": failed.job_id}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("status-page")
    data_dir = folder / "data"
    _seed(data_dir)
    env = {k: v for k, v in os.environ.items() if k not in SEALED_ENV}
    env.update({"DATA_DIR": str(data_dir), "API_PORT": "0", "DAILY_QUOTA": "3", "PYTHONPATH": str(ROOT),
                "PIPELINE_SETTINGS_FILE": str(folder / "no-settings.toml")})
    log = folder / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # a few seconds; more on a loaded machine
        while True:
            holder = read_holder(data_dir) or {}
            if holder.get("ready") and holder.get("pid") == proc.pid:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not get ready: {log.read_text()}")
            time.sleep(0.02)
        token = (data_dir / "api_token").read_text().strip()
        yield Daemon(f"http://127.0.0.1:{holder['api_port']}", token, proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=15_000)  # the page answers in well under a second; a loaded machine may not
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (its own sessionStorage) that fails the test on a script error or a CSP refusal."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
              if msg.type == "error" and "401" not in msg.text else None)
    yield opened
    context.close()
    assert problems == []


def _schedule(daemon: Daemon, name: str) -> dict:
    with daemon.api() as api:
        made = api.post("/api/v1/schedules", json={
            "name": name, "schedule_type": "cron", "cron_expression": "0 8 * * *", "timezone": "Asia/Ho_Chi_Minh",
            "target_command": "log", "command_payload": {"message": "chào buổi sáng"},
        })
    assert made.status_code == 201, made.text
    return made.json()


def _log_in(page: Page, daemon: Daemon, token: str | None = None) -> None:
    page.goto(daemon.url + "/")
    page.get_by_label("API token").fill(token or daemon.token)
    page.get_by_role("button", name="Show status").click()


def _wall(iso: str) -> str:
    """How the page writes an instant of the API: the zone's wall clock and its offset."""
    when = datetime.fromisoformat(iso)
    offset = when.strftime("%z")
    return when.strftime("%Y-%m-%d %H:%M ") + f"{offset[:3]}:{offset[3:]}"


def test_the_page_asks_for_the_token_and_holds_no_data(daemon: Daemon, page: Page) -> None:
    schedule = _schedule(daemon, "hidden-before-login")
    html = httpx.get(daemon.url + "/", timeout=10)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in html.headers["content-security-policy"]
    for secret in (schedule["name"], schedule["schedule_id"], "video-failed-1", daemon.token):
        assert secret not in html.text
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(daemon.url + "/")
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("#login")).to_contain_text("DATA_DIR/api_token")
    expect(page.locator("#status")).to_be_hidden()
    assert schedule["name"] not in page.content()
    assert [url for url in asked if "/api/" in url] == []  # without a token it asks the daemon nothing


def test_the_status_api_needs_the_token(daemon: Daemon) -> None:
    assert httpx.get(daemon.url + "/api/v1/status", timeout=10).status_code == 401
    with daemon.api("not-the-token") as api:
        refused = api.get("/api/v1/status")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    with daemon.api() as api:
        answer = api.get("/api/v1/status")
    assert answer.status_code == 200
    data = answer.json()
    assert data["sections"]["quota"]["quota"] == 3 and data["sections"]["quota"]["used"] == 1
    assert data["jobs"]["failures"][0]["job_id"] == "video-failed-1"
    assert SECRET not in answer.text


def test_the_status_answer_carries_no_secret(daemon: Daemon) -> None:
    schedule = _schedule(daemon, "paused-with-a-secret")
    reason = f"waiting for https://hooks.example/x?token={SECRET}-2"
    with daemon.api() as api:
        assert api.post(f"/api/v1/schedules/{schedule['schedule_id']}/pause", json={"reason": reason}).status_code == 200
        answer = api.get("/api/v1/status")
    (row,) = [s for s in answer.json()["schedules"]["items"] if s["schedule_id"] == schedule["schedule_id"]]
    assert row["paused"] is True and row["paused_reason"].startswith("waiting for https://hooks.example/x?token=")
    assert SECRET not in answer.text  # neither the failed job's error nor the pause reason


def test_a_wrong_token_is_refused_with_a_message_and_the_form_again(daemon: Daemon, page: Page) -> None:
    schedule = _schedule(daemon, "hidden-from-a-wrong-token")
    _log_in(page, daemon, token="not-the-token")
    expect(page.get_by_role("alert")).to_contain_text("refused this token")
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("#status")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
    assert schedule["name"] not in page.content()


def test_logged_in_it_shows_quota_jobs_failures_schedules_and_published_videos(daemon: Daemon, page: Page) -> None:
    schedule = _schedule(daemon, "sáng-8-giờ")
    _log_in(page, daemon)
    card = page.locator(f"[data-schedule-id='{schedule['schedule_id']}']")
    expect(card).to_contain_text("sáng-8-giờ")
    expect(card).to_contain_text("cron 0 8 * * *")
    next_fire = _wall(schedule["next_run_time"])
    assert next_fire.endswith("08:00 +07:00")
    expect(card.locator(".next-fire")).to_have_text(next_fire)
    expect(card).to_contain_text("Asia/Ho_Chi_Minh")
    expect(page.locator("#quota-used")).to_contain_text("1 / 3")
    expect(page.locator("#quota-remaining")).to_contain_text("2")
    expect(page.locator("#quota")).to_contain_text(datetime.now(VIETNAM_TZ).date().isoformat())
    expect(page.locator("#jobs")).to_contain_text("failed")
    failure = page.locator("#failure-list li").first
    expect(failure).to_contain_text("video-failed-1")
    expect(failure).to_contain_text("WaitForUpload failed with YouTubeError: 403")
    expect(failure).not_to_contain_text("Traceback")  # its first line only
    link = page.get_by_role("link", name="Thám tử lừng danh — chương 12")
    expect(link).to_have_attribute("href", "https://www.youtube.com/watch?v=abc123XYZ")
    assert SECRET not in page.content() and daemon.token not in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)


def test_pause_resume_and_trigger_act_through_the_api(daemon: Daemon, page: Page) -> None:
    schedule = _schedule(daemon, "buttons")
    sid = schedule["schedule_id"]
    _log_in(page, daemon)
    card = page.locator(f"[data-schedule-id='{sid}']")
    api = daemon.api()
    with api:
        card.get_by_role("button", name="Pause").click()
        expect(card.get_by_role("button", name="Resume")).to_be_visible()  # the page refreshed after the action
        expect(card).to_contain_text("Paused")
        assert api.get(f"/api/v1/schedules/{sid}").json()["paused"] is True

        card.get_by_role("button", name="Resume").click()
        expect(card.get_by_role("button", name="Pause")).to_be_visible()
        resumed = api.get(f"/api/v1/schedules/{sid}").json()
        assert resumed["paused"] is False and resumed["next_run_time"] is not None
        expect(card.locator(".next-fire")).to_have_text(_wall(resumed["next_run_time"]))

        assert api.get(f"/api/v1/schedules/{sid}/executions").json()["count"] == 0
        card.get_by_role("button", name="Trigger").click()
        expect(page.get_by_role("status")).to_contain_text("Triggered “buttons”: execution ")
        executions = api.get(f"/api/v1/schedules/{sid}/executions").json()["executions"]
        assert len(executions) == 1
        shown = page.get_by_role("status").inner_text()
        assert executions[0]["execution_id"] in shown


def test_on_a_phone_it_is_one_column_without_sideways_scrolling(daemon: Daemon, browser: Browser) -> None:
    _schedule(daemon, "phone")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        _log_in(page, daemon)
        expect(page.locator("#schedule-list")).to_contain_text("phone")
        boxes = [page.locator(f"#{name}").bounding_box() for name in ("quota", "jobs", "schedules", "failures")]
        assert len({round(box["x"]) for box in boxes}) == 1  # one column
        assert all(upper["y"] + upper["height"] <= lower["y"] for upper, lower in zip(boxes, boxes[1:]))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "status-page-phone.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (None, None),
        ("  \n ", None),
        ("boom", "boom"),
        ("\n  first line  \nTraceback ...", "first line …"),
        ("x" * 400, "x" * 299 + " …"),
        ("sent Authorization: Bearer abcdef123456 to the API", "sent Authorization: Bearer [redacted] to the API"),
    ],
    ids=["none", "blank", "one-line", "first-of-many", "too-long", "bearer-scrubbed"],
)
def test_an_error_is_shown_on_one_scrubbed_line(text: str | None, shown: str | None) -> None:
    assert one_line(text) == shown


def test_jobs_overview_counts_by_status_and_stage_and_lists_the_last_failures() -> None:
    utc = timezone.utc
    at = datetime(2026, 11, 23, 12, 0, tzinfo=utc)

    def job(job_id: str, status: str, minutes: int, **fields) -> ScheduledJob:
        when = at + timedelta(minutes=minutes)
        return ScheduledJob.model_validate({"job_id": job_id, "account_id": "a", "content": "c", "kind": "k",
                                            "status": status, "scheduled_time": when, "updated_at": when, **fields})

    jobs = [
        job("f-old", "failed", 1, error="old\ntrace", stage="failed"),
        job("f-new", "failed", 5, error="new", completed_at=at + timedelta(minutes=5)),
        job("f-mid", "failed", 3),
        job("run", "running", 0, started_at=at, stage="rendering"),
        job("wait", "scheduled", 9, stage="pending"),
        job("done", "completed", 2),
    ]
    seen = jobs_overview(jobs, zone=load_timezone("Asia/Ho_Chi_Minh"), failures=2)
    assert seen["total"] == 6 and seen["failed_total"] == 3
    assert {k: v for k, v in seen["by_status"].items() if v} == {"failed": 3, "running": 1, "scheduled": 1,
                                                                "completed": 1}
    assert seen["by_stage"] == {"failed": 1, "pending": 1, "rendering": 1}
    assert [(f["job_id"], f["error"]) for f in seen["failures"]] == [("f-new", "new"), ("f-mid", "(no error recorded)")]
    assert seen["failures"][0]["failed_at"] == "2026-11-23T19:05:00+07:00"
    assert seen["running"] == [{"job_id": "run", "kind": "k", "account_id": "a", "stage": "rendering",
                                "started_at": "2026-11-23T19:00:00+07:00"}]
