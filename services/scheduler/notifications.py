"""Notifications: short messages to the creator's webhooks when something needs a person.

``Notifier`` is what the scheduler and the packages built on it call: ``notify(event,
message, **fields)`` returns at once and never raises. ``NullNotifier`` drops everything.
``WebhookNotifier`` posts to the ``[[webhooks]]`` of the scheduler's config file
(``scheduler_config.py``): ``notify`` puts the message on each wanted webhook's bounded
queue (a full queue drops it, with a warning) and one named task per webhook POSTs it, with
a timeout, up to ``attempts`` times with exponential backoff (1 s, 2 s); a 4xx answer other
than 429 is not retried. Webhook URLs hold secrets, so logs name the webhook, never its URL
(httpx's own request log lines for these URLs are dropped while the notifier runs).
``JobFailedAlert`` is the job observer that sends ``job_failed``.

The events, each one line a person can act on::

    job_failed                a job failed for good (no retry left)
    quota_reached             an account's daily video quota is reached
    youtube_quota_exhausted   YouTube's API quota stopped the day's uploads
    schedule_paused           a schedule paused itself after repeated failures
    token_refresh_failed      a channel's YouTube OAuth token no longer works

Bodies by webhook format: ``json`` ``{"event", "message", "service", "at", ...fields}``;
``slack`` ``{"text"}``; ``discord`` ``{"content"}`` (at most 2000 characters, mentions
off); ``telegram`` ``{"chat_id", "text"}``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .clock import Clock, utc_now
from .errors import SchedulerError
from .models import JobStatus, ScheduledJob

if TYPE_CHECKING:
    import httpx

    from .scheduler_config import WebhookConfig

__all__ = [
    "EVENTS",
    "JOB_FAILED",
    "JobFailedAlert",
    "Note",
    "Notifier",
    "NullNotifier",
    "QUOTA_REACHED",
    "SCHEDULE_PAUSED",
    "TOKEN_REFRESH_FAILED",
    "WebhookNotifier",
    "YOUTUBE_QUOTA_EXHAUSTED",
    "backoff_delays",
    "webhook_body",
]

logger = logging.getLogger(__name__)

JOB_FAILED = "job_failed"
QUOTA_REACHED = "quota_reached"
YOUTUBE_QUOTA_EXHAUSTED = "youtube_quota_exhausted"
SCHEDULE_PAUSED = "schedule_paused"
TOKEN_REFRESH_FAILED = "token_refresh_failed"
EVENTS = (JOB_FAILED, QUOTA_REACHED, YOUTUBE_QUOTA_EXHAUSTED, SCHEDULE_PAUSED, TOKEN_REFRESH_FAILED)
"""Every event a webhook's ``events`` may name."""

MAX_MESSAGE_CHARS = 1000
"""A message longer than this is cut (it is meant to be one short line)."""
DISCORD_MAX_CHARS = 2000
TELEGRAM_MAX_CHARS = 4096
MAX_RETRY_AFTER_SECONDS = 60.0
"""The longest wait a 429's Retry-After header may ask for before the next attempt."""


class Notifier(Protocol):
    """Sends ``message`` about ``event`` to whoever listens; never blocks, never raises."""

    def notify(self, event: str, message: str, **fields: Any) -> None: ...


class NullNotifier:
    """A notifier that tells nobody."""

    def notify(self, event: str, message: str, **fields: Any) -> None:
        return None


@dataclass(frozen=True)
class Note:
    """One notification as queued: the event, its one-line message, extra fields, when."""

    event: str
    message: str
    service: str
    at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)


def _one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as a link or a mention: "--account <id>" would vanish
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(format: str, note: Note, *, chat_id: str | None = None) -> dict[str, Any]:
    """The JSON body of ``note`` for a webhook of ``format`` (pure)."""
    text = f"[{note.service}] {note.message}"
    if format == "slack":
        return {"text": _slack_escape(text)}
    if format == "discord":
        return {"content": _one_line(text, DISCORD_MAX_CHARS), "allowed_mentions": {"parse": []}}
    if format == "telegram":
        return {"chat_id": chat_id, "text": _one_line(text, TELEGRAM_MAX_CHARS)}
    body: dict[str, Any] = {
        "event": note.event,
        "message": note.message,
        "service": note.service,
        "at": note.at.isoformat(),
    }
    body.update((key, value) for key, value in note.fields.items() if key not in body)
    return body


def backoff_delays(attempts: int, first_seconds: float) -> list[float]:
    """The waits between ``attempts`` tries: ``first_seconds``, doubling (3, 1.0: [1.0, 2.0])."""
    return [first_seconds * 2**i for i in range(max(attempts - 1, 0))]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: keep the backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _HideUrls(logging.Filter):
    """Drops httpx's request log lines that would show a webhook's URL (its secret part)."""

    def __init__(self, secrets: set[str]) -> None:
        super().__init__("webhook-urls")
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted shows no URL either
            return True
        return not any(secret in text for secret in self.secrets)


def _secret_parts(url: str) -> set[str]:
    """What of ``url`` must not reach a log: the whole, and its path and query."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    found = {url}
    if len(tail) > 1:
        found.add(tail)
    return found


class _State(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class _Hook:
    config: WebhookConfig
    queue: asyncio.Queue[Note]
    url: str | None = None
    task: asyncio.Task[None] | None = None
    disabled: bool = False
    dropped: int = 0
    busy: bool = False


class WebhookNotifier:
    """A ``Notifier`` and a scheduler companion that POSTs notifications to webhooks.

    :param webhooks: the ``[[webhooks]]`` of the config file (none: every call is a no-op).
    :param service: the service name in each message (``Settings.service_name``).
    :param environ: where ``url_env`` and ``bot_token_env`` are read, at ``start``
        (default ``os.environ``); an unset one disables that webhook, logged as an error.
    :param transport: the httpx transport (default: the network; tests may pass
        ``httpx.MockTransport``).
    :param clock: the wall clock (the messages' ``at``).
    :param sleep: waits out a backoff (``asyncio.sleep``; tests pass a fake).
    :param queue_size: messages each webhook may hold unsent; more are dropped.
    :param attempts: tries per message (a 4xx other than 429 ends it at once).
    :param first_backoff_seconds: the wait after the first failed try, doubling after each.
    :param grace_seconds: how long ``stop`` lets the queues drain before it cancels.
    """

    name = "webhooks"

    def __init__(
        self,
        webhooks: Sequence[WebhookConfig] = (),
        *,
        service: str = "video-scheduler",
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        queue_size: int = 100,
        attempts: int = 3,
        first_backoff_seconds: float = 1.0,
        grace_seconds: float = 5.0,
    ) -> None:
        self._hooks = [_Hook(config, asyncio.Queue(maxsize=queue_size)) for config in webhooks]
        self._service = service
        self._environ = environ
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._attempts = max(attempts, 1)
        self._delays = backoff_delays(self._attempts, first_backoff_seconds)
        self._grace = grace_seconds
        self._state = _State.CREATED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._filter: _HideUrls | None = None

    @property
    def webhook_names(self) -> list[str]:
        """The names of the webhooks this notifier posts to."""
        return [hook.config.name for hook in self._hooks]

    # -- Notifier ----------------------------------------------------------------------------

    def notify(self, event: str, message: str, **fields: Any) -> None:
        """Queue ``message`` for every webhook that wants ``event``; return at once, never raise.

        Safe from any thread: off the loop's thread the message is handed to the loop.
        Before ``start`` it waits in the queue; after ``stop`` it is dropped.
        """
        try:
            wanted = [hook for hook in self._hooks if not hook.disabled and hook.config.wants(event)]
            if not wanted:
                return
            if self._state in (_State.STOPPING, _State.STOPPED):
                logger.warning("notification after the notifier stopped; dropped", extra={"event": event})
                return
            note = Note(event, _one_line(message), self._service, self._clock(), dict(fields))
            loop = self._loop
            if loop is not None and threading.get_ident() != self._loop_thread:
                loop.call_soon_threadsafe(self._enqueue, wanted, note)
            else:
                self._enqueue(wanted, note)
        except Exception as exc:  # never into the caller: a notification is never worth a failure
            logger.error("a notification could not be queued (%s)", type(exc).__name__, extra={"event": event})

    def _enqueue(self, hooks: list[_Hook], note: Note) -> None:
        for hook in hooks:
            if hook.disabled:
                continue
            try:
                hook.queue.put_nowait(note)
            except asyncio.QueueFull:
                hook.dropped += 1
                logger.warning(
                    "webhook queue full; notification dropped",
                    extra={"webhook": hook.config.name, "event": note.event, "dropped": hook.dropped},
                )

    # -- Companion ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the webhooks' URLs and start one sender task per webhook."""
        if self._state is not _State.CREATED:
            raise SchedulerError(f"cannot start the webhook notifier while it is {self._state.value}")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._state = _State.RUNNING
        if not self._hooks:
            return
        import httpx  # here, not at the top: ``import services.scheduler`` stays free of httpx

        secrets: set[str] = set()
        for hook in self._hooks:
            try:
                hook.url = hook.config.resolved_url(self._environ)
            except SchedulerError as exc:  # an unset variable: the others still work
                self._disable(hook, exc.message)
                continue
            secrets |= _secret_parts(hook.url)
            secrets |= _secret_parts(str(httpx.URL(hook.url)))
        self._filter = _HideUrls(secrets)
        logging.getLogger("httpx").addFilter(self._filter)
        self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        for hook in self._hooks:
            if not hook.disabled:
                hook.task = asyncio.create_task(self._send_loop(hook), name=f"webhook-{hook.config.name}")
        logger.info("webhook notifier started", extra={"webhooks": self.webhook_names})

    def _disable(self, hook: _Hook, reason: str) -> None:
        hook.disabled = True
        dropped = hook.queue.qsize()
        while not hook.queue.empty():
            hook.queue.get_nowait()
            hook.queue.task_done()
        logger.error(
            "webhook disabled: %s", reason, extra={"webhook": hook.config.name, "dropped": dropped}
        )

    async def stop(self) -> None:
        """Take no more messages, send what is queued within the grace, then cancel."""
        if self._state is not _State.RUNNING:
            self._state = _State.STOPPED
            return
        self._state = _State.STOPPING
        running = [hook for hook in self._hooks if hook.task is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(hook.queue.join() for hook in running)), self._grace)
        except TimeoutError:
            left = {
                hook.config.name: hook.queue.qsize() + hook.busy for hook in running if hook.queue.qsize() or hook.busy
            }
            logger.warning(
                "notifications not sent before the grace ran out; dropped",
                extra={"grace_seconds": self._grace, "left": left},
            )
        finally:
            tasks = [hook.task for hook in running if hook.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
            if self._filter is not None:
                logging.getLogger("httpx").removeFilter(self._filter)
            self._state = _State.STOPPED

    # -- delivery ----------------------------------------------------------------------------

    async def _send_loop(self, hook: _Hook) -> None:
        while True:
            note = await hook.queue.get()
            hook.busy = True
            try:
                await self._deliver(hook, note)
            except Exception as exc:  # a bug here must not end the task: log it, go on
                logger.error(
                    "webhook delivery failed unexpectedly (%s)",
                    type(exc).__name__,
                    extra={"webhook": hook.config.name, "event": note.event},
                )
            finally:
                hook.busy = False
                hook.queue.task_done()

    async def _deliver(self, hook: _Hook, note: Note) -> None:
        """Up to ``attempts`` POSTs of ``note``; every outcome is logged by the webhook's name."""
        config = hook.config
        body = json.dumps(webhook_body(config.format, note, chat_id=config.chat_id), default=str).encode()
        log = {"webhook": config.name, "event": note.event}
        outcome = "not sent"
        for attempt in range(1, self._attempts + 1):
            outcome, retry, wait = await self._post(hook, body)
            if outcome is None:
                logger.debug("notification sent", extra={**log, "attempt": attempt})
                return
            if not retry:
                logger.error(
                    "webhook refused the notification (%s); not retried", outcome, extra={**log, "attempt": attempt}
                )
                return
            if attempt == self._attempts:
                break
            delay = max(self._delays[attempt - 1], wait or 0.0)
            logger.warning(
                "webhook delivery failed (%s); retrying in %s s",
                outcome,
                delay,
                extra={**log, "attempt": attempt, "delay_seconds": delay},
            )
            await self._sleep(delay)
        logger.error(
            "webhook delivery failed after %d attempts (%s); notification dropped",
            self._attempts,
            outcome,
            extra={**log, "attempts": self._attempts},
        )

    async def _post(self, hook: _Hook, body: bytes) -> tuple[str | None, bool, float | None]:
        """One POST: (None, ..) when taken; else (what went wrong, retry?, Retry-After)."""
        if self._client is None or hook.url is None:
            return "the notifier is not running", False, None
        try:
            response = await self._client.post(
                hook.url,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=hook.config.timeout_seconds,
            )
        except Exception as exc:  # httpx's errors may quote the URL: say only which kind
            return type(exc).__name__, True, None
        status = response.status_code
        if 200 <= status < 300:
            return None, False, None
        outcome = f"HTTP {status}"
        if status == 429:
            return outcome, True, _retry_after(response.headers.get("Retry-After"))
        return outcome, not 400 <= status < 500, None


class _HasNotifier(Protocol):
    notifier: Notifier


_FIRST_LINE = re.compile(r"[\r\n].*", re.S)


class JobFailedAlert:
    """A ``JobObserver`` that sends ``job_failed`` when a job becomes FAILED (no retry left).

    :param owner: whose ``notifier`` gets it (the Scheduler), read at each event.
    """

    def __init__(self, owner: _HasNotifier) -> None:
        self._owner = owner

    def __call__(self, before: ScheduledJob | None, after: ScheduledJob | None) -> None:
        if after is None or after.status is not JobStatus.FAILED:
            return
        if before is not None and before.status is JobStatus.FAILED:
            return
        error = _one_line(_FIRST_LINE.sub("", after.error or "no error recorded"), 300)
        self._owner.notifier.notify(
            JOB_FAILED,
            f"job {after.job_id} ({after.kind}, account {after.account_id}) failed for good: {error}",
            job_id=after.job_id,
            kind=after.kind,
            account_id=after.account_id,
            error=after.error,
            retry_count=after.retry_count,
        )
