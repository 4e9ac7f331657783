"""The one retry policy of the providers: bounded attempts, capped exponential backoff, Retry-After.

MangaDex (API calls and page downloads), the YouTube resumable upload and edge-tts all
retry through :class:`RetryPolicy`, which runs an attempt function under tenacity
(``Retrying`` / ``AsyncRetrying``) instead of a hand-written loop in each provider.

The policy, per call:

- at most ``attempts`` attempts (the first one included), then the last error is raised
  as it is, so the caller words its own "failed N times, last: ..." message;
- only the errors named by ``retry_on`` are retried (default :class:`RetryLater`); any
  other error (a quota answer, a refused token, a 404, cancellation) goes straight up;
- the wait after failure ``n`` is ``base * 2**(n-1)``, at most ``cap``, plus a random
  share of up to ``jitter`` (0.1 adds 0 to 10 %); a server's wait (``retry_after`` on the
  error, e.g. a 429's ``Retry-After``) replaces the backoff; no wait exceeds ``max_wait``;
- ``on_retry`` is called before each wait with a :class:`RetryEvent` (what failed, the
  wait): it logs the line the provider has always logged (the default logs a generic
  one) and may do more work, such as asking for a fresh server;
- the wait goes through the injected ``sleep`` (tests pass a recorder: no real sleeping);
  a wait of zero is not slept at all.

:func:`backoff` and :meth:`RetryPolicy.delay` are the pure arithmetic, without I/O. A
tenacity ``Retrying`` object keeps per-run state, so each call builds its own: one policy
can serve concurrent tasks.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from services.pipeline.errors import VideoPipelineError

__all__ = ["RetryEvent", "RetryLater", "RetryPolicy", "backoff"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Any]
AsyncSleep = Callable[[float], Awaitable[Any]]
OnRetry = Callable[["RetryEvent"], Any]

_MAX_EXPONENT = 1000  # 2.0 ** 1000 is still a float; any cap is reached long before


class RetryLater(VideoPipelineError):
    """An attempt failed in a way worth another try.

    :param reason: what went wrong, shown in the retry log and the final error.
    :param retry_after: seconds the server asked to wait (a 429's ``Retry-After``), if any;
        the policy waits that long instead of its backoff.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class RetryEvent:
    """A failed attempt that will be tried again, as ``on_retry`` sees it.

    :param attempt: the attempt that failed, from 1.
    :param attempts: the policy's bound on attempts.
    :param delay: seconds until the next attempt.
    :param error: what the failed attempt raised.
    """

    attempt: int
    attempts: int
    delay: float
    error: BaseException


def backoff(failures: int, *, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait after ``failures`` failures in a row: ``base * 2**(failures-1)``, at most ``cap``,
    then times ``1 + jitter`` (``jitter`` is this wait's drawn share: 0.07 adds 7 %).

    ``failures`` below 1 counts as 1.
    """
    exponent = min(max(0, failures - 1), _MAX_EXPONENT)
    return min(cap, base * 2.0**exponent) * (1.0 + jitter)


def _retry_after(error: BaseException | None) -> float | None:
    """The wait a failed attempt's error asks for (its ``retry_after`` attribute), if any."""
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failing call.

    :param attempts: attempts in all, the first included (at least 1).
    :param base: the first backoff, in seconds; it doubles with each failure in a row.
    :param cap: the longest backoff, before jitter.
    :param jitter: up to this share of the backoff is added at random (0.1: up to 10 %), so
        parallel callers do not retry in step. Not applied to a server's ``retry_after``.
    :param max_wait: no wait, a server's ``retry_after`` included, is longer than this.
    :param name: what is retried, for the default log line.
    """

    attempts: int
    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.0
    max_wait: float = math.inf
    name: str = "call"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs attempts >= 1, got {self.attempts}")
        if self.base < 0 or self.cap < 0 or self.max_wait < 0:
            raise ValueError(
                f"a retry policy's waits must not be negative, got base={self.base}, "
                f"cap={self.cap}, max_wait={self.max_wait}"
            )
        if self.jitter < 0:
            raise ValueError(f"a retry policy's jitter must not be negative, got {self.jitter}")

    def delay(self, failures: int, *, retry_after: float | None = None, draw: float = 0.0) -> float:
        """Seconds to wait after failure ``failures`` (from 1), before the next attempt.

        :param retry_after: the server's asked wait; it replaces the backoff (never below 0).
        :param draw: where in ``[0, 1]`` this wait's jitter falls (0: none, 1: all of ``jitter``).
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait)
        wait = backoff(failures, base=self.base, cap=self.cap, jitter=self.jitter * draw)
        return min(wait, self.max_wait)

    def call(
        self,
        fn: Callable[[], T],
        *,
        sleep: Sleep,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = RetryLater,
        on_retry: OnRetry | None = None,
        rand: Callable[[], float] = random.random,
    ) -> T:
        """Run ``fn()`` until it returns, retrying the errors in ``retry_on``; blocking.

        :param sleep: how to wait (``time.sleep``; tests pass a recorder).
        :param retry_on: the errors worth another attempt; anything else is raised at once.
        :param on_retry: called before each wait (default: a generic warning).
        :param rand: draws the jitter share in ``[0, 1)``.
        :raises: the last attempt's error once ``attempts`` have failed.
        """
        hook = on_retry or self._log_retry

        def nap(seconds: float) -> None:
            if seconds > 0:
                sleep(seconds)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            hook(self._event(state))

        retrying = tenacity.Retrying(sleep=nap, before_sleep=before_sleep, **self._rules(retry_on, rand))
        return retrying(fn)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        sleep: AsyncSleep,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = RetryLater,
        on_retry: OnRetry | None = None,
        rand: Callable[[], float] = random.random,
    ) -> T:
        """Await ``fn()`` until it returns, retrying the errors in ``retry_on``.

        As :meth:`call`, with an async ``sleep`` (``asyncio.sleep``); ``on_retry`` may be
        sync or async (an async one is awaited before the wait).
        """
        hook = on_retry or self._log_retry

        async def attempt() -> T:
            return await fn()

        async def nap(seconds: float) -> None:
            if seconds > 0:
                await sleep(seconds)

        async def before_sleep(state: tenacity.RetryCallState) -> None:
            result = hook(self._event(state))
            if inspect.isawaitable(result):
                await result

        retrying = tenacity.AsyncRetrying(sleep=nap, before_sleep=before_sleep, **self._rules(retry_on, rand))
        return await retrying(attempt)

    def _rules(
        self, retry_on: type[BaseException] | tuple[type[BaseException], ...], rand: Callable[[], float]
    ) -> dict[str, Any]:
        """What ``call`` and ``acall`` share: when to stop, how long to wait, what to retry."""
        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": self._wait(rand),
            "retry": tenacity.retry_if_exception_type(retry_on),
            "reraise": True,
        }

    def _wait(self, rand: Callable[[], float]) -> Callable[[tenacity.RetryCallState], float]:
        """The tenacity wait strategy: :meth:`delay` of the failed attempt and its error."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            draw = rand() if self.jitter else 0.0
            return self.delay(state.attempt_number, retry_after=_retry_after(error), draw=draw)

        return wait

    def _event(self, state: tenacity.RetryCallState) -> RetryEvent:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        return RetryEvent(
            attempt=state.attempt_number,
            attempts=self.attempts,
            delay=delay,
            error=error if error is not None else RetryLater("no error recorded"),
        )

    def _log_retry(self, event: RetryEvent) -> None:
        logger.warning(
            "%s: attempt %d of %d failed (%s); retrying in %.1f s",
            self.name,
            event.attempt,
            event.attempts,
            event.error,
            event.delay,
        )
