"""The providers' shared retry policy: pure delays as tables, then runs with a fake sleep (no waiting)."""

from __future__ import annotations

import logging
import math

import pytest

from services.pipeline.providers.fetch import mangadex
from services.pipeline.providers.retry_policy import RetryEvent, RetryLater, RetryPolicy, backoff
from services.pipeline.providers.tts import tts_edge
from services.pipeline.providers.upload import youtube


class Sleeps(list):
    """A stand-in for ``time.sleep``: records the waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class AsyncSleeps(list):
    """A stand-in for ``asyncio.sleep``: records the waits."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Flaky:
    """Fails with the given errors in turn, then returns ``result``; counts its calls."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result

    async def run(self) -> str:
        return self()


# -- the pure arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "base", "cap", "jitter", "expected"),
    [
        (1, 1.0, 30.0, 0.0, 1.0),
        (2, 1.0, 30.0, 0.0, 2.0),
        (3, 1.0, 30.0, 0.0, 4.0),
        (5, 1.0, 30.0, 0.0, 16.0),
        (6, 1.0, 30.0, 0.0, 30.0),
        (3, 0.5, 64.0, 0.0, 2.0),
        (7, 1.0, 64.0, 0.0, 64.0),
        (3, 0.5, 30.0, 0.1, 2.2),
        (9, 1.0, 30.0, 0.1, 33.0),  # jitter comes after the cap
        (0, 1.0, 30.0, 0.0, 1.0),  # below 1 counts as 1
        (5000, 1.0, 30.0, 0.0, 30.0),  # no overflow
        (4, 0.0, 30.0, 0.0, 0.0),
    ],
    ids=[
        "first",
        "doubles",
        "again",
        "16",
        "capped",
        "half-base",
        "youtube-cap",
        "jitter",
        "jitter-after-cap",
        "zero-failures",
        "huge",
        "no-wait",
    ],
)
def test_backoff(failures: int, base: float, cap: float, jitter: float, expected: float) -> None:
    assert backoff(failures, base=base, cap=cap, jitter=jitter) == pytest.approx(expected)


def test_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=8, base=1.0, cap=30.0)
    assert [policy.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999, 1.0])
def test_jitter_stays_within_its_share(draw: float) -> None:
    policy = RetryPolicy(attempts=4, base=2.0, cap=30.0, jitter=0.1)
    for failures in (1, 2, 3, 6):
        plain = backoff(failures, base=2.0, cap=30.0)
        assert plain <= policy.delay(failures, draw=draw) <= plain * 1.1
    assert policy.delay(2, draw=0.5) == pytest.approx(4.0 * 1.05)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(7.0, 7.0), (0.0, 0.0), (-3.0, 0.0), (500.0, 120.0), (None, 2.0)],
    ids=["honoured", "zero", "past", "bounded-by-max-wait", "absent-backoff"],
)
def test_a_servers_retry_after_replaces_the_backoff(retry_after: float | None, expected: float) -> None:
    policy = RetryPolicy(attempts=4, base=1.0, cap=30.0, jitter=0.1, max_wait=120.0)
    assert policy.delay(2, retry_after=retry_after, draw=0.0) == expected
    if retry_after is not None:  # no jitter on what the server asked for
        assert policy.delay(2, retry_after=retry_after, draw=1.0) == expected


def test_max_wait_bounds_the_backoff_too() -> None:
    assert RetryPolicy(attempts=3, base=10.0, cap=100.0, max_wait=15.0).delay(3) == 15.0


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": 2, "base": -1.0},
        {"attempts": 2, "cap": -1.0},
        {"attempts": 2, "max_wait": -1.0},
        {"attempts": 2, "jitter": -0.1},
    ],
    ids=["attempts", "base", "cap", "max-wait", "jitter"],
)
def test_bad_policies_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**options)


def test_the_providers_keep_their_delays() -> None:
    """The thin wrappers the providers keep give the same numbers as before the policy."""
    assert [mangadex.backoff_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert [youtube.backoff_delay(n, 1.0) for n in (1, 2, 7, 12)] == [1, 2, 64, 64]
    assert youtube.backoff_delay(3, 0.5) == 2.0
    assert tts_edge.backoff_seconds(9, 1.0) == 30.0
    assert tts_edge.backoff_seconds(3, 0.5, jitter=0.1) == pytest.approx(2.2)
    assert mangadex.API_RETRY.delay(1, retry_after=600.0) == mangadex.MAX_WAIT_SECONDS
    assert (mangadex.API_RETRY.attempts, mangadex.PAGE_RETRY.attempts) == (4, 3)
    assert mangadex.PAGE_RETRY.delay(2) == 0.0


# -- running under the policy (sync) -----------------------------------------------------------


def test_a_failing_call_is_retried_with_the_backoff_then_succeeds() -> None:
    sleeps = Sleeps()
    flaky = Flaky(RetryLater("HTTP 503"), RetryLater("HTTP 502"))
    policy = RetryPolicy(attempts=4, base=1.0, cap=30.0)
    assert policy.call(flaky, sleep=sleeps) == "ok"
    assert flaky.calls == 3 and sleeps == [1.0, 2.0]


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    sleeps = Sleeps()
    flaky = Flaky(*(RetryLater(f"HTTP 50{n}") for n in range(6)))
    with pytest.raises(RetryLater, match="^HTTP 503$"):
        RetryPolicy(attempts=4, base=1.0, cap=30.0).call(flaky, sleep=sleeps)
    assert flaky.calls == 4 and sleeps == [1.0, 2.0, 4.0]  # no wait after the last attempt


def test_one_attempt_means_no_retry() -> None:
    sleeps = Sleeps()
    flaky = Flaky(RetryLater("down"))
    with pytest.raises(RetryLater):
        RetryPolicy(attempts=1).call(flaky, sleep=sleeps)
    assert flaky.calls == 1 and sleeps == []


def test_an_error_not_named_is_raised_at_once() -> None:
    sleeps = Sleeps()
    flaky = Flaky(PermissionError("quotaExceeded"), RetryLater("never reached"))
    with pytest.raises(PermissionError, match="quotaExceeded"):
        RetryPolicy(attempts=5).call(flaky, sleep=sleeps)
    assert flaky.calls == 1 and sleeps == []


def test_retry_on_names_the_retried_errors() -> None:
    sleeps = Sleeps()
    flaky = Flaky(ConnectionError("reset"), TimeoutError("slow"))
    got = RetryPolicy(attempts=3, base=0.5).call(
        flaky, sleep=sleeps, retry_on=(ConnectionError, TimeoutError)
    )
    assert got == "ok" and sleeps == [0.5, 1.0]


def test_a_servers_retry_after_is_waited() -> None:
    sleeps = Sleeps()
    flaky = Flaky(RetryLater("429", retry_after=7.0), RetryLater("429"), RetryLater("429", retry_after=999.0))
    policy = RetryPolicy(attempts=4, base=1.0, cap=30.0, max_wait=120.0)
    assert policy.call(flaky, sleep=sleeps) == "ok"
    assert sleeps == [7.0, 2.0, 120.0]


def test_jitter_is_drawn_for_each_wait() -> None:
    sleeps = Sleeps()
    draws = iter([0.0, 1.0, 0.5, 0.5])
    flaky = Flaky(RetryLater("a"), RetryLater("b"), RetryLater("c"))
    policy = RetryPolicy(attempts=4, base=1.0, cap=30.0, jitter=0.1)
    assert policy.call(flaky, sleep=sleeps, rand=lambda: next(draws)) == "ok"
    assert sleeps == pytest.approx([1.0, 2.2, 4.2])


def test_a_zero_wait_is_not_slept() -> None:
    sleeps = Sleeps()
    flaky = Flaky(RetryLater("a"), RetryLater("b"))
    assert RetryPolicy(attempts=3, base=0.0, cap=0.0).call(flaky, sleep=sleeps) == "ok"
    assert sleeps == [] and flaky.calls == 3


def test_on_retry_is_told_before_each_wait() -> None:
    order: list[str] = []
    events: list[RetryEvent] = []

    def sleep(seconds: float) -> None:
        order.append(f"sleep {seconds}")

    def on_retry(event: RetryEvent) -> None:
        events.append(event)
        order.append(f"retry {event.attempt}")

    first, second = RetryLater("one"), RetryLater("two")
    flaky = Flaky(first, second, RetryLater("three"))
    with pytest.raises(RetryLater, match="three"):
        RetryPolicy(attempts=3, base=1.0).call(flaky, sleep=sleep, on_retry=on_retry)
    assert order == ["retry 1", "sleep 1.0", "retry 2", "sleep 2.0"]
    assert events == [RetryEvent(1, 3, 1.0, first), RetryEvent(2, 3, 2.0, second)]


def test_the_default_log_line_names_what_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky(RetryLater("HTTP 503"))
    with caplog.at_level(logging.WARNING):
        RetryPolicy(attempts=2, base=1.5, name="thing").call(flaky, sleep=Sleeps())
    assert caplog.messages == ["thing: attempt 1 of 2 failed (HTTP 503); retrying in 1.5 s"]


def test_a_policy_without_a_cap_still_bounds_attempts() -> None:
    sleeps = Sleeps()
    flaky = Flaky(*(RetryLater("x") for _ in range(3)))
    with pytest.raises(RetryLater):
        RetryPolicy(attempts=3, base=1.0, cap=math.inf).call(flaky, sleep=sleeps)
    assert sleeps == [1.0, 2.0]


# -- running under the policy (async) ----------------------------------------------------------


async def test_async_calls_retry_with_a_fake_sleep() -> None:
    sleeps = AsyncSleeps()
    flaky = Flaky(RetryLater("HTTP 503"), RetryLater("429", retry_after=7.0))
    policy = RetryPolicy(attempts=4, base=1.0, cap=30.0)
    assert await policy.acall(flaky.run, sleep=sleeps) == "ok"
    assert sleeps == [1.0, 7.0] and flaky.calls == 3


async def test_async_attempts_are_bounded() -> None:
    sleeps = AsyncSleeps()
    flaky = Flaky(*(RetryLater(f"try {n}") for n in range(1, 10)))
    with pytest.raises(RetryLater, match="try 3"):
        await RetryPolicy(attempts=3, base=1.0).acall(flaky.run, sleep=sleeps)
    assert flaky.calls == 3 and sleeps == [1.0, 2.0]


async def test_async_an_error_not_named_is_raised_at_once() -> None:
    sleeps = AsyncSleeps()
    flaky = Flaky(KeyError("gone"))
    with pytest.raises(KeyError):
        await RetryPolicy(attempts=5).acall(flaky.run, sleep=sleeps)
    assert flaky.calls == 1 and sleeps == []


async def test_async_on_retry_may_be_a_coroutine_and_is_awaited_first() -> None:
    order: list[str] = []

    async def sleep(seconds: float) -> None:
        order.append(f"sleep {seconds}")

    async def on_retry(event: RetryEvent) -> None:
        order.append(f"refresh after {event.attempt}")

    flaky = Flaky(RetryLater("a"), RetryLater("b"))
    assert await RetryPolicy(attempts=3, base=1.0).acall(flaky.run, sleep=sleep, on_retry=on_retry) == "ok"
    assert order == ["refresh after 1", "sleep 1.0", "refresh after 2", "sleep 2.0"]


async def test_async_a_function_returning_an_awaitable_is_awaited() -> None:
    flaky = Flaky(RetryLater("a"))
    got = await RetryPolicy(attempts=2, base=0.0).acall(lambda: flaky.run(), sleep=AsyncSleeps())
    assert got == "ok" and flaky.calls == 2
