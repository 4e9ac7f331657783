"""The client-side rate limit of the MangaDex source: a sliding window on an injected clock.

MangaDex allows about 5 API requests a second and 40 ``/at-home/server`` calls a minute;
``mangadex_client.MangaDexApi`` holds one :class:`RateLimiter` for each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]


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
