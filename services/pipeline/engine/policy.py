"""Pure decisions of the state machine: error matching, retry delays, the next state.

What a Choice state picks is ``choice.py``'s; this module decides what follows a Task.

No clock, no I/O, no randomness of its own (a FULL-jitter draw comes in as ``rand``), so
every rule is a table in the tests. The meanings are Step Functions':

- Retriers are scanned in order; the *first* whose ErrorEquals matches decides. Each
  retrier counts its own attempts (``attempts[i]``); while that count is below its
  MaxAttempts the state runs again after IntervalSeconds × BackoffRate^(n-1) seconds for
  the n-th retry, capped by MaxDelaySeconds, and with JitterStrategy FULL a uniform draw in
  [0, that delay]. Once the first matching retrier is spent, no later retrier is tried.
- Then catchers are scanned in order; the first match names the next state.
- No match: the error ends the run (the job fails).

Error names: ``States.ALL`` matches every error. ``States.TaskFailed`` matches every
error except the two timeouts. ``States.Timeout`` also matches a heartbeat timeout (a
task that stops heartbeating has timed out, as the States Language defines it), while
``States.HeartbeatTimeout`` matches only that.

One rule is this product's, not Step Functions': a state with ``StartedBy`` (it waits
for a worker another state started) whose worker was lost (``WorkerLost``: killed by a
signal, its pid gone after a restart or a reboot) goes back to that state at once, up to
MAX_RELAUNCHES times per state per run item, without spending a Retry attempt or waiting a
delay (``on_lost_worker``). Past that bound the loss is an ordinary error for ``on_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.pipeline.engine.definition import Jitter, Retrier, StateSpec
from services.pipeline.errors import ALL, HEARTBEAT_TIMEOUT, TASK_FAILED, TIMEOUT, WORKER_LOST

__all__ = [
    "Catch",
    "Fail",
    "MAX_RELAUNCHES",
    "Relaunch",
    "Retry",
    "backoff_seconds",
    "matches",
    "next_after_success",
    "on_error",
    "on_lost_worker",
]


@dataclass(frozen=True)
class Retry:
    """Run the state again after ``delay_seconds``; ``retrier`` / ``attempt`` say which."""

    delay_seconds: float
    retrier: int
    attempt: int


@dataclass(frozen=True)
class Catch:
    """Go to ``next_state`` with the error recorded."""

    next_state: str
    error: str
    cause: str


@dataclass(frozen=True)
class Fail:
    """Nothing retries or catches this error: the run ends failed."""

    error: str
    cause: str


@dataclass(frozen=True)
class Relaunch:
    """Start the lost worker again: go to ``start_state`` now; ``relaunch`` counts from 1."""

    start_state: str
    relaunch: int


MAX_RELAUNCHES = 3
"""Relaunches of a lost worker per WaitFor* state per video. A worker that is lost every
time (it takes the machine down, the OOM killer always picks it) then fails like any other
error instead of being started forever."""


def on_lost_worker(
    spec: StateSpec, name: str, relaunched: int, *, limit: int = MAX_RELAUNCHES
) -> Relaunch | None:
    """Whether a state's error ``name`` relaunches its worker, given ``relaunched`` so far.

    Only a ``WorkerLost`` of a state with ``StartedBy`` does, while ``relaunched < limit``;
    None sends the error through ``on_error`` (Retry, Catch) like any other.
    """
    if name != WORKER_LOST or spec.started_by is None or relaunched >= limit:
        return None
    return Relaunch(start_state=spec.started_by, relaunch=relaunched + 1)


def matches(error_equals: Sequence[str], name: str) -> bool:
    """Whether an ErrorEquals list covers the error ``name``."""
    for pattern in error_equals:
        if pattern in (ALL, name):
            return True
        if pattern == TASK_FAILED and name not in (TIMEOUT, HEARTBEAT_TIMEOUT):
            return True
        if pattern == TIMEOUT and name == HEARTBEAT_TIMEOUT:
            return True
    return False


def backoff_seconds(retrier: Retrier, attempt: int) -> float:
    """The delay before retry number ``attempt`` (1-based), before any jitter."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    delay = retrier.interval_seconds * retrier.backoff_rate ** (attempt - 1)
    if retrier.max_delay_seconds is not None:
        delay = min(delay, float(retrier.max_delay_seconds))
    return float(delay)


def on_error(
    spec: StateSpec,
    name: str,
    cause: str,
    attempts: Sequence[int],
    *,
    rand: Callable[[], float] = lambda: 1.0,
) -> Retry | Catch | Fail:
    """What a state does when it raised error ``name``, given its retriers' attempt counts.

    :param attempts: retries already made per retrier (same order as ``spec.retry``;
        missing entries count as 0).
    :param rand: a uniform draw in [0, 1) for FULL jitter.
    """
    for index, retrier in enumerate(spec.retry):
        if not matches(retrier.error_equals, name):
            continue
        made = attempts[index] if index < len(attempts) else 0
        if made < retrier.max_attempts:
            delay = backoff_seconds(retrier, made + 1)
            if retrier.jitter_strategy is Jitter.FULL:
                delay *= rand()
            return Retry(delay_seconds=delay, retrier=index, attempt=made + 1)
        break  # the first matching retrier is spent: on to Catch
    for catcher in spec.catch:
        if matches(catcher.error_equals, name):
            return Catch(next_state=catcher.next, error=name, cause=cause)
    return Fail(error=name, cause=cause)


def next_after_success(state: str, spec: StateSpec, output: Mapping[str, Any]) -> str:
    """The state after Task ``state`` succeeded with ``output``: its Next.

    A stage that did part of its work and says where to go on (a non-null
    ``continuation_token``, GenerateTTS on a very long chapter) runs again.
    """
    if output.get("continuation_token"):
        return state
    if spec.next is None:
        raise ValueError(f"state {state} has no Next")
    return spec.next
