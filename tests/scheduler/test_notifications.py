"""Webhook notifications: a real receiver on loopback, every format, retries, a dead receiver,
job_failed from a real Scheduler, the config file, and no webhook URL in any log record."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.scheduler.cli import main
from services.scheduler.handlers import HandlerRegistry
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.notifications import (
    EVENTS,
    JOB_FAILED,
    QUOTA_REACHED,
    SCHEDULE_PAUSED,
    Note,
    WebhookNotifier,
    backoff_delays,
    webhook_body,
)
from services.scheduler.scheduler import Scheduler
from services.scheduler.scheduler_config import (
    SchedulerConfig,
    TargetConfig,
    WebhookConfig,
    load_scheduler_config,
)
from services.scheduler.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SECRET = "T0000-B1111-s3cr3tPathPart"  # the token part of a webhook URL
BOT_TOKEN = "123456:AAsecretBotToken_xyz"


class Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1 in a thread.

    ``statuses`` are answered in turn (then 200); each request is kept in ``requests``.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.headers: dict[int, dict[str, str]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                receiver.requests.append(
                    {"path": self.path, "type": self.headers.get("Content-Type"), "body": json.loads(raw)}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                for name, value in receiver.headers.get(status, {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet: the test reads ``requests``

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-receiver", daemon=True
        )

    def url(self, path: str = f"/hooks/{SECRET}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict[str, Any]]:
        return [request["body"] for request in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    made.thread.start()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()
        made.thread.join(timeout=5)


class Sleeps:
    """A fake ``sleep``: records each backoff and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def hook(name: str = "ops", fmt: str = "json", **keys: Any) -> WebhookConfig:
    return WebhookConfig(name=name, format=fmt, **keys)


def notifier(*hooks: WebhookConfig, sleeps: Sleeps | None = None, **kwargs: Any) -> WebhookNotifier:
    return WebhookNotifier(hooks, service="test-scheduler", clock=lambda: AT, sleep=sleeps or Sleeps(), **kwargs)


# -- bodies and delivery -------------------------------------------------------------------


async def test_each_format_reaches_the_receiver_with_its_body(receiver: Receiver) -> None:
    sent = notifier(
        hook("raw", "json", url=receiver.url("/json")),
        hook("team-slack", "slack", url=receiver.url("/slack")),
        hook("team-discord", "discord", url=receiver.url("/discord")),
        hook("phone", "telegram", bot_token_env="TG_TOKEN", chat_id=-100123, api_base=receiver.url("")),
        environ={"TG_TOKEN": BOT_TOKEN},
    )
    await sent.start()
    sent.notify(JOB_FAILED, "job j1 (log, account a) failed for good: <boom>", job_id="j1", kind="log")
    await sent.stop()

    by_path = {request["path"]: request for request in receiver.requests}
    assert sorted(by_path) == sorted(["/discord", "/json", "/slack", f"/bot{BOT_TOKEN}/sendMessage"])
    assert {request["type"] for request in receiver.requests} == {"application/json"}
    assert by_path["/json"]["body"] == {
        "event": "job_failed",
        "message": "job j1 (log, account a) failed for good: <boom>",
        "service": "test-scheduler",
        "at": "2026-11-23T12:00:00+00:00",
        "job_id": "j1",
        "kind": "log",
    }
    assert by_path["/slack"]["body"] == {
        "text": "[test-scheduler] job j1 (log, account a) failed for good: &lt;boom&gt;"
    }
    assert by_path["/discord"]["body"] == {
        "content": "[test-scheduler] job j1 (log, account a) failed for good: <boom>",
        "allowed_mentions": {"parse": []},
    }
    assert by_path[f"/bot{BOT_TOKEN}/sendMessage"]["body"] == {
        "chat_id": "-100123",
        "text": "[test-scheduler] job j1 (log, account a) failed for good: <boom>",
    }


def test_discord_content_is_cut_to_2000_characters_and_a_message_is_one_line() -> None:
    note = Note("job_failed", "x" * 5000, "svc", AT)
    content = webhook_body("discord", note)["content"]
    assert len(content) == 2000 and content.endswith("…")
    sent = notifier(hook("raw", "json", url="http://127.0.0.1:9/x"))
    sent.notify(JOB_FAILED, "first line\nsecond\tline  ", job_id="j")
    (queued,) = [sent._hooks[0].queue.get_nowait()]
    assert queued.message == "first line second line"


def test_fields_do_not_override_the_json_bodys_own_keys() -> None:
    body = webhook_body("json", Note("quota_reached", "m", "svc", AT, {"event": "forged", "count": 3}))
    assert body == {"event": "quota_reached", "message": "m", "service": "svc", "at": AT.isoformat(), "count": 3}


async def test_only_the_events_a_webhook_names_reach_it(receiver: Receiver) -> None:
    sent = notifier(
        hook("all", url=receiver.url("/all")),
        hook("quota-only", url=receiver.url("/quota"), events=[QUOTA_REACHED]),
    )
    await sent.start()
    sent.notify(JOB_FAILED, "failed")
    sent.notify(QUOTA_REACHED, "quota")
    await sent.stop()
    seen = sorted((r["path"], r["body"]["event"]) for r in receiver.requests)
    assert seen == [("/all", "job_failed"), ("/all", "quota_reached"), ("/quota", "quota_reached")]


def test_backoff_is_1_then_2_seconds_for_3_attempts() -> None:
    assert backoff_delays(3, 1.0) == [1.0, 2.0]
    assert backoff_delays(1, 1.0) == []


async def test_a_500_is_retried_with_backoff_then_succeeds(receiver: Receiver, caplog) -> None:
    receiver.statuses = [500, 503]
    sleeps = Sleeps()
    sent = notifier(hook(url=receiver.url()), sleeps=sleeps)
    await sent.start()
    with caplog.at_level(logging.WARNING, logger="services.scheduler.notifications"):
        sent.notify(JOB_FAILED, "failed")
        await sent.stop()
    assert len(receiver.requests) == 3 and receiver.bodies()[-1]["event"] == "job_failed"
    assert sleeps.delays == [1.0, 2.0]
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.attempt for r in retries] == [1, 2] and all(r.webhook == "ops" for r in retries)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_receiver_that_keeps_failing_gets_three_attempts_then_an_error_line(
    receiver: Receiver, caplog
) -> None:
    receiver.statuses = [500, 500, 500, 500]
    sleeps = Sleeps()
    sent = notifier(hook(url=receiver.url()), sleeps=sleeps)
    await sent.start()
    with caplog.at_level(logging.WARNING, logger="services.scheduler.notifications"):
        sent.notify(JOB_FAILED, "failed")
        await sent.stop()
    assert len(receiver.requests) == 3 and sleeps.delays == [1.0, 2.0]
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage() == "webhook delivery failed after 3 attempts (HTTP 500); notification dropped"


async def test_a_400_is_not_retried(receiver: Receiver, caplog) -> None:
    receiver.statuses = [400]
    sleeps = Sleeps()
    sent = notifier(hook(url=receiver.url()), sleeps=sleeps)
    await sent.start()
    with caplog.at_level(logging.WARNING, logger="services.scheduler.notifications"):
        sent.notify(JOB_FAILED, "failed")
        await sent.stop()
    assert len(receiver.requests) == 1 and sleeps.delays == []
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage() == "webhook refused the notification (HTTP 400); not retried"


async def test_a_429_is_retried_after_its_retry_after(receiver: Receiver) -> None:
    receiver.statuses = [429]
    receiver.headers = {429: {"Retry-After": "7"}}
    sleeps = Sleeps()
    sent = notifier(hook(url=receiver.url()), sleeps=sleeps)
    await sent.start()
    sent.notify(JOB_FAILED, "failed")
    await sent.stop()
    assert len(receiver.requests) == 2 and sleeps.delays == [7.0]


def black_hole() -> socket.socket:
    """A listening socket that never accepts: a connection opens, no answer ever comes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1000)
    return sock


def refused_port() -> int:
    """A loopback port nothing listens on: a connection is refused at once."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    return port


async def test_a_dead_receiver_never_blocks_or_raises_into_the_caller(caplog) -> None:
    hole = black_hole()
    try:
        sent = notifier(
            hook("hole", url=f"http://127.0.0.1:{hole.getsockname()[1]}/x", timeout_seconds=2.0),
            hook("refused", url=f"http://127.0.0.1:{refused_port()}/x", timeout_seconds=2.0),
            queue_size=10,
            grace_seconds=0.5,
        )
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick(), name="ticker")
        await sent.start()
        calls: list[float] = []
        with caplog.at_level(logging.WARNING, logger="services.scheduler.notifications"):
            for i in range(50):  # more than the queues hold: the rest are dropped
                began = time.monotonic()
                sent.notify(JOB_FAILED, f"failed {i}", job_id=f"j{i}")
                calls.append(time.monotonic() - began)
            await asyncio.sleep(0.3)  # the hole's sender waits for an answer meanwhile
            began = time.monotonic()
            await sent.stop()
            stop_seconds = time.monotonic() - began
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    finally:
        hole.close()
    # a sender that blocked the loop would stall it for the hole's timeout (2 s) at each try;
    # the margins are for a loaded machine
    assert max(calls) < 1.0, max(calls)  # never a network wait in notify
    assert max(gaps) < 1.0, max(gaps)  # the loop kept ticking every 10 ms
    assert stop_seconds < 2.0, stop_seconds  # the grace (0.5 s), then the senders are cancelled
    dropped = [r for r in caplog.records if r.getMessage() == "webhook queue full; notification dropped"]
    assert {r.webhook for r in dropped} == {"hole", "refused"}
    assert "webhook delivery failed after 3 attempts (ConnectError); notification dropped" in caplog.messages
    assert any(r.getMessage().startswith("notifications not sent before the grace ran out") for r in caplog.records)
    sent.notify(JOB_FAILED, "after stop")  # dropped, still no exception


async def test_a_receiver_that_never_answers_is_cut_off_at_the_timeout(caplog) -> None:
    hole = black_hole()
    try:
        sent = notifier(
            hook("hole", url=f"http://127.0.0.1:{hole.getsockname()[1]}/x", timeout_seconds=0.2),
            grace_seconds=5.0,  # httpx's own default timeout (5 s a try) would not fit in it 3 times
        )
        await sent.start()
        with caplog.at_level(logging.WARNING, logger="services.scheduler.notifications"):
            sent.notify(JOB_FAILED, "failed")
            await sent.stop()
    finally:
        hole.close()
    assert "webhook delivery failed after 3 attempts (ReadTimeout); notification dropped" in caplog.messages


async def test_a_webhook_whose_variable_is_unset_is_disabled_and_the_others_work(
    receiver: Receiver, caplog
) -> None:
    sent = notifier(
        hook("missing", url_env="NO_SUCH_WEBHOOK_VAR"),
        hook("present", url_env="PRESENT_WEBHOOK_URL"),
        environ={"PRESENT_WEBHOOK_URL": receiver.url("/present")},
    )
    with caplog.at_level(logging.ERROR, logger="services.scheduler.notifications"):
        await sent.start()
        sent.notify(JOB_FAILED, "failed")
        await sent.stop()
    assert [r["path"] for r in receiver.requests] == ["/present"]
    (error,) = caplog.records
    assert error.getMessage() == (
        "webhook disabled: webhooks missing.url_env: environment variable NO_SUCH_WEBHOOK_VAR is not set"
    )


async def test_notify_from_a_worker_thread_reaches_the_receiver(receiver: Receiver) -> None:
    sent = notifier(hook(url=receiver.url()))
    await sent.start()
    await asyncio.to_thread(sent.notify, QUOTA_REACHED, "from a stage's thread")
    await asyncio.sleep(0)  # the loop takes the handed-over message
    await sent.stop()
    assert receiver.bodies()[0]["message"] == "from a stage's thread"


async def test_no_webhook_url_or_token_in_any_log_record(receiver: Receiver, caplog) -> None:
    receiver.statuses = [500, 200, 400]
    refused = refused_port()
    sent = notifier(
        hook("slack", "slack", url=receiver.url()),
        hook("phone", "telegram", bot_token_env="TG_TOKEN", chat_id="42", api_base=receiver.url("")),
        hook("gone", "discord", url=f"http://127.0.0.1:{refused}/api/webhooks/{SECRET}", timeout_seconds=0.2),
        environ={"TG_TOKEN": BOT_TOKEN},
    )
    caplog.set_level(logging.DEBUG)  # everything, httpx's and httpcore's own lines too
    await sent.start()
    sent.notify(JOB_FAILED, "failed")
    await sent.stop()
    assert len(receiver.requests) == 3  # slack: 500 then 200; telegram: 400
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # the client did log
    for record in caplog.records:
        text = record.getMessage() + " " + repr(record.__dict__)
        assert SECRET not in text and BOT_TOKEN not in text, (record.name, record.getMessage())
    assert not logging.getLogger("httpx").filters  # stop took its filter away


# -- job_failed from a real Scheduler --------------------------------------------------------


async def test_a_job_that_fails_for_good_is_told_to_the_webhooks(
    receiver: Receiver, data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "scheduler.toml"
    config.write_text(
        f'[[webhooks]]\nname = "ops"\nformat = "json"\nurl = "{receiver.url()}"\nevents = ["job_failed"]\n',
        encoding="utf-8",
    )

    async def boom(job: ScheduledJob) -> None:
        raise RuntimeError("the disk said no")

    registry = HandlerRegistry()
    registry.register("boom", boom)
    scheduler = Scheduler.from_settings(
        Settings(data_dir=data_dir, config_path=config, service_name="svc"), registry=registry
    )
    failed = asyncio.Event()
    scheduler.manager.observers.append(
        lambda before, after: failed.set() if after is not None and after.status is JobStatus.FAILED else None
    )
    scheduler.load()
    await scheduler.start()
    try:
        job = await scheduler.add_job_async("acc", "explode", kind="boom", max_retries=0)
        await asyncio.wait_for(failed.wait(), 10)
    finally:
        await scheduler.stop()
    (body,) = receiver.bodies()
    assert body["event"] == "job_failed" and body["service"] == "svc"
    assert body["message"] == f"job {job.job_id} (boom, account acc) failed for good: RuntimeError: the disk said no"
    assert (body["job_id"], body["kind"], body["account_id"]) == (job.job_id, "boom", "acc")


async def test_a_failure_with_a_retry_left_is_not_told(receiver: Receiver, data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "scheduler.toml"
    config.write_text(f'[[webhooks]]\nname = "ops"\nformat = "json"\nurl = "{receiver.url()}"\n', encoding="utf-8")

    async def boom(job: ScheduledJob) -> None:
        raise RuntimeError("again")

    registry = HandlerRegistry()
    registry.register("boom", boom)
    scheduler = Scheduler.from_settings(Settings(data_dir=data_dir, config_path=config), registry=registry)
    retried = asyncio.Event()
    scheduler.manager.observers.append(
        lambda before, after: retried.set() if after is not None and after.retry_count == 1 else None
    )
    scheduler.load()
    await scheduler.start()
    try:
        job = await scheduler.add_job_async("acc", "explode", kind="boom", max_retries=1)
        await asyncio.wait_for(retried.wait(), 10)
    finally:
        await scheduler.stop()
    ran = scheduler.get_job(job.job_id)
    assert ran.status is JobStatus.SCHEDULED and ran.retry_count == 1
    assert receiver.requests == []


def test_the_notifier_is_a_companion_stopped_last(data_dir: Path, tmp_path: Path) -> None:
    scheduler = Scheduler.from_settings(Settings(data_dir=data_dir, config_path=tmp_path / "none.toml"))
    assert isinstance(scheduler.notifier, WebhookNotifier) and scheduler.notifier.webhook_names == []
    assert scheduler.companions[0] is scheduler.notifier  # stopped in reverse order: last


# -- the config file -----------------------------------------------------------------------

GOOD = """
[targets.crm]
url = "https://crm.example.com/hooks/new-video"
headers = { "X-Source" = "video-scheduler" }
headers_env = { "Authorization" = "CRM_AUTH" }

[targets.signed]
url_env = "SIGNED_URL"
timeout_seconds = 2.5

[[webhooks]]
name = "ops"
format = "slack"
url_env = "SLACK_WEBHOOK_URL"
events = ["job_failed", "token_refresh_failed"]

[[webhooks]]
name = "phone"
format = "telegram"
bot_token_env = "TELEGRAM_BOT_TOKEN"
chat_id = 987654
"""


def test_a_good_file_loads_into_the_models(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.toml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_scheduler_config(path)
    assert sorted(config.targets) == ["crm", "signed"]
    crm, signed = config.targets["crm"], config.targets["signed"]
    assert crm.timeout_seconds == 10.0 and signed.timeout_seconds == 2.5
    env = {"CRM_AUTH": "Bearer abc", "SIGNED_URL": "https://s.example.com/x?sig=1"}
    assert crm.resolved_headers("targets.crm", env) == {"X-Source": "video-scheduler", "Authorization": "Bearer abc"}
    assert signed.resolved_url("targets.signed", env) == "https://s.example.com/x?sig=1"
    ops, phone = config.webhooks
    assert (ops.name, ops.format, ops.events, ops.wants("quota_reached")) == (
        "ops", "slack", ("job_failed", "token_refresh_failed"), False
    )
    assert phone.events is None and phone.wants(SCHEDULE_PAUSED) and phone.chat_id == "987654"
    assert phone.resolved_url({"TELEGRAM_BOT_TOKEN": "1:ab"}) == "https://api.telegram.org/bot1:ab/sendMessage"
    with pytest.raises(SettingsError, match=r"^targets\.signed\.url_env: environment variable SIGNED_URL is not set$"):
        signed.resolved_url("targets.signed", {})


def test_a_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_scheduler_config(tmp_path / "absent.toml") == SchedulerConfig()


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("[[webhooks]]\nname = 'a'\nformat = 'email'\nurl = 'https://x.example'\n",
         "webhooks[0].format: input should be 'json', 'slack', 'discord' or 'telegram'"),
        ("[[webhooks]]\nname = 'a'\nformat = 'json'\n", "webhooks[0]: needs exactly one of url or url_env"),
        ("[[webhooks]]\nname = 'a'\nformat = 'json'\nurl = 'https://x.example'\nevnts = []\n",
         "webhooks[0].evnts: unknown key"),
        ("[[webhooks]]\nname = 'a'\nformat = 'json'\nurl = 'https://x.example'\nevents = ['job_done']\n",
         f"webhooks[0].events: unknown event 'job_done' (known: {', '.join(EVENTS)})"),
        ("[[webhooks]]\nname = 'a'\nformat = 'telegram'\nbot_token_env = 'T'\n",
         "webhooks[0]: a telegram webhook needs bot_token_env and chat_id"),
        ("[[webhooks]]\nname = 'a'\nformat = 'slack'\nurl = 'https://x.example'\nchat_id = '1'\n",
         "webhooks[0]: chat_id is only for a telegram webhook"),
        ("[[webhooks]]\nname = 'a'\nformat = 'json'\nurl = 'hooks.example.com/services/" + SECRET + "'\n",
         "webhooks[0].url: must be an absolute http:// or https:// URL without spaces"),
        ("[[webhooks]]\nname = 'a'\nformat = 'json'\nurl = 'https://x.example'\n"
         "[[webhooks]]\nname = 'a'\nformat = 'json'\nurl = 'https://y.example'\n",
         "webhooks: two webhooks are named 'a'"),
        ("[targets.crm]\nurl = 'https://x.example'\ntimeout_seconds = 0\n",
         "targets.crm.timeout_seconds: must be a number of seconds above 0 and at most 300"),
        ("[targets.crm]\nurl = 'https://x.example'\nurl_env = 'X'\n", "targets.crm: needs exactly one of url or url_env"),
        ("[targets.crm]\nurl_env = 'not a name'\n",
         "targets.crm.url_env: must be an environment variable name (letters, digits and '_')"),
        ("[schedules]\n", "schedules: unknown key"),
    ],
    ids=["format", "no-url", "unknown-key", "unknown-event", "telegram-chat", "chat-not-telegram",
         "bad-url-not-echoed", "duplicate-name", "timeout", "two-urls", "env-name", "unknown-section"],
)
def test_a_broken_file_is_one_line_naming_the_file_the_key_and_the_rule(tmp_path: Path, text, rule) -> None:
    path = tmp_path / "scheduler.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_scheduler_config(path)
    assert caught.value.message == f"{path}: {rule}"
    assert caught.value.exit_code == 2 and SECRET not in caught.value.message


def test_a_file_that_is_not_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.toml"
    path.write_text("[[webhooks]]\nname = ops\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"^{re.escape(str(path))}: not valid TOML: .*line 2"):
        load_scheduler_config(path)


def test_the_cli_exits_2_with_the_line_when_the_file_is_broken(tmp_path: Path, capsys) -> None:
    path = tmp_path / "scheduler.toml"
    path.write_text("[[webhooks]]\nname = 'a'\nformat = 'json'\n", encoding="utf-8")
    data = tmp_path / "data"
    env = {"SCHEDULER_CONFIG": str(path), "DATA_DIR": str(data)}
    code = main(["add-job", "--account", "a", "--content", "x", "--kind", "log"], environ=env)
    assert code == 2
    assert capsys.readouterr().err == f"error: {path}: webhooks[0]: needs exactly one of url or url_env\n"


_EXAMPLE_LINE = re.compile(r"^# ?((\[\[?[\w.-]+\]\]?)|([A-Za-z_][\w-]*\s*=.*))$")


def test_the_example_file_loads_and_so_do_its_commented_examples(tmp_path: Path) -> None:
    example = ROOT / "config" / "scheduler.example.toml"
    assert load_scheduler_config(example) == SchedulerConfig()  # as committed: harmless
    lines = example.read_text(encoding="utf-8").splitlines()
    uncommented = "\n".join(
        match.group(1) if (match := _EXAMPLE_LINE.match(line)) else line for line in lines
    )
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented, encoding="utf-8")
    config = load_scheduler_config(path)
    assert {hook.format for hook in config.webhooks} == {"json", "slack", "discord", "telegram"}
    documented = {key for hook in config.webhooks for key in hook.model_fields_set}
    documented |= {key for target in config.targets.values() for key in target.model_fields_set}
    every_key = set(WebhookConfig.model_fields) | set(TargetConfig.model_fields)
    assert documented == every_key
