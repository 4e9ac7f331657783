"""The state machine's pure decisions, as tables: matching, delays, retry or catch, next state."""

from __future__ import annotations

import pytest

from services.pipeline.engine.choice import choose
from services.pipeline.engine.definition import Retrier, StateSpec
from services.pipeline.engine.policy import (
    Catch,
    Fail,
    Retry,
    backoff_seconds,
    matches,
    next_after_success,
    on_error,
)
from services.pipeline.errors import (
    ALL,
    HEARTBEAT_TIMEOUT,
    TASK_FAILED,
    TIMEOUT,
    YOUTUBE_QUOTA,
    HeartbeatTimeout,
    StateTimeout,
    TaskFailed,
    YouTubeQuotaError,
    error_name,
)
from services.pipeline.jobs.run_document import MAX_FAILED_IN_A_ROW, check_more_videos, failed_in_a_row
from services.pipeline.stages import pipeline_definition

DEFINITION = pipeline_definition()


def after(state: str, output: dict) -> str:
    """The state after ``state`` succeeded with ``output``, through the Choice right after it."""
    nxt = next_after_success(state, DEFINITION.state(state), output)
    spec = DEFINITION.state(nxt)
    if spec.type == "Choice" and nxt != "CheckMoreVideos":
        return choose(spec.choices, spec.default, {DEFINITION.state(state).result_key(state): output})
    return nxt


def more_videos(count: int, quota: int, loop: bool, in_a_row: int = 0) -> str:
    """What config/pipeline.json's CheckMoreVideos rules decide for these variables."""
    spec = DEFINITION.state("CheckMoreVideos")
    document = {"daily_count": count, "daily_quota": quota, "loop": loop, "failed_in_a_row": in_a_row}
    return choose(spec.choices, spec.default, document)


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ([ALL], "ValueError", True),
        ([ALL], TIMEOUT, True),
        ([TASK_FAILED], "ValueError", True),
        ([TASK_FAILED], YOUTUBE_QUOTA, True),
        ([TASK_FAILED], TIMEOUT, False),
        ([TASK_FAILED], HEARTBEAT_TIMEOUT, False),
        ([TIMEOUT], HEARTBEAT_TIMEOUT, True),
        ([HEARTBEAT_TIMEOUT], TIMEOUT, False),
        ([YOUTUBE_QUOTA], YOUTUBE_QUOTA, True),
        ([YOUTUBE_QUOTA], "UploadError", False),
        (["RenderError", "UploadError"], "UploadError", True),
    ],
)
def test_error_matching(patterns, name, expected) -> None:
    assert matches(patterns, name) is expected


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (StateTimeout("x"), TIMEOUT),
        (HeartbeatTimeout("x"), HEARTBEAT_TIMEOUT),
        (YouTubeQuotaError("x"), YOUTUBE_QUOTA),
        (TaskFailed("x"), TASK_FAILED),
        (TaskFailed("x", name="RenderError"), "RenderError"),
        (TimeoutError(), TIMEOUT),
        (ValueError("x"), "ValueError"),
    ],
)
def test_error_names(exc, name) -> None:
    assert error_name(exc) == name


def retrier(**fields) -> Retrier:
    return Retrier.model_validate({"ErrorEquals": [ALL], **fields})


@pytest.mark.parametrize(
    ("fields", "delays"),
    [
        ({}, [1.0, 2.0, 4.0]),  # Step Functions' defaults: 1 s, rate 2
        ({"IntervalSeconds": 60, "BackoffRate": 2.0}, [60.0, 120.0, 240.0]),
        ({"IntervalSeconds": 30, "BackoffRate": 1.0}, [30.0, 30.0, 30.0]),
        ({"IntervalSeconds": 10, "BackoffRate": 3.0, "MaxDelaySeconds": 50}, [10.0, 30.0, 50.0]),
    ],
)
def test_backoff_is_interval_times_rate_to_the_n_minus_1_capped(fields, delays) -> None:
    assert [backoff_seconds(retrier(**fields), n) for n in (1, 2, 3)] == delays


def test_fetch_manga_retries_twice_60_then_120_seconds_apart_then_catches() -> None:
    spec = DEFINITION.state("FetchManga")
    assert on_error(spec, "ConnectionError", "down", [0]) == Retry(60.0, retrier=0, attempt=1)
    assert on_error(spec, "ConnectionError", "down", [1]) == Retry(120.0, retrier=0, attempt=2)
    assert on_error(spec, "ConnectionError", "down", [2]) == Catch("HandleError", "ConnectionError", "down")


def test_full_jitter_draws_between_zero_and_the_backoff() -> None:
    spec = StateSpec.model_validate(
        {
            "Type": "Task",
            "Next": "Done",
            "Retry": [{"ErrorEquals": [ALL], "IntervalSeconds": 8, "JitterStrategy": "FULL"}],
        }
    )
    assert on_error(spec, "E", "", [2], rand=lambda: 0.25) == Retry(8.0, retrier=0, attempt=3)  # 32 × 0.25
    assert on_error(spec, "E", "", [0], rand=lambda: 0.0) == Retry(0.0, retrier=0, attempt=1)


def test_each_retrier_counts_its_own_attempts_and_the_first_match_decides() -> None:
    spec = StateSpec.model_validate(
        {
            "Type": "Task",
            "Next": "Done",
            "Retry": [
                {"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 1},
                {"ErrorEquals": [ALL], "IntervalSeconds": 5, "MaxAttempts": 2},
            ],
            "Catch": [{"ErrorEquals": [ALL], "Next": "HandleError"}],
        }
    )
    assert on_error(spec, "Other", "", [1, 0]) == Retry(5.0, retrier=1, attempt=1)
    assert on_error(spec, "Flaky", "", [0, 2]) == Retry(1.0, retrier=0, attempt=1)
    # Flaky's own retrier is spent: the later States.ALL retrier is not tried for it
    assert on_error(spec, "Flaky", "", [1, 0]) == Catch("HandleError", "Flaky", "")


def test_youtube_quota_is_never_retried_and_goes_to_quota_reached() -> None:
    spec = DEFINITION.state("WaitForUpload")
    caught = on_error(spec, YOUTUBE_QUOTA, "quotaExceeded", [0, 0])
    assert caught == Catch("QuotaReached", YOUTUBE_QUOTA, "quotaExceeded")
    assert on_error(spec, "UploadError", "500", [0, 0]) == Catch("HandleError", "UploadError", "500")


@pytest.mark.parametrize("name", [TIMEOUT, HEARTBEAT_TIMEOUT])
def test_a_worker_timeout_is_retried_twice_then_handled(name) -> None:
    spec = DEFINITION.state("WaitForRender")
    assert on_error(spec, name, "", [0]) == Retry(30.0, retrier=0, attempt=1)
    assert on_error(spec, name, "", [1]) == Retry(60.0, retrier=0, attempt=2)
    assert on_error(spec, name, "", [2]) == Catch("HandleError", name, "")
    # a render that failed outright is not retried by the timeout retrier
    assert on_error(spec, "RenderError", "bad frame", [0]) == Catch("HandleError", "RenderError", "bad frame")


def test_cleanup_and_counter_errors_do_not_fail_the_video() -> None:
    assert on_error(DEFINITION.state("Cleanup"), "OSError", "", [3]).next_state == "IncrementCounter"
    assert on_error(DEFINITION.state("IncrementCounter"), "OSError", "", [5]).next_state == "CheckMoreVideos"


def test_an_error_nothing_catches_fails_the_run() -> None:
    spec = DEFINITION.state("HandleError")
    assert on_error(spec, "OSError", "disk full", [3]) == Fail("OSError", "disk full")


@pytest.mark.parametrize(
    ("state", "output", "expected"),
    [
        ("CheckQuota", {"quota_reached": True, "daily_count": 10, "daily_quota": 10}, "QuotaReached"),
        ("CheckQuota", {"quota_reached": False, "daily_count": 3, "daily_quota": 10}, "FetchManga"),
        ("FetchManga", {"status": "no_manga_available"}, "NoMangaAvailable"),
        ("FetchManga", {"status": "success", "job_id": "job-abc123"}, "GenerateScript"),
        ("GenerateTTS", {"job_id": "job-abc123", "audio_generated": True}, "StartRenderer"),
        ("WaitForUpload", {"job_id": "j", "status": "completed"}, "Cleanup"),
        ("HandleError", {"job_id": "j", "status": "failed", "error_logged": True}, "CheckMoreVideos"),
    ],
)
def test_next_state_after_success(state, output, expected) -> None:
    assert after(state, output) == expected


@pytest.mark.parametrize(
    ("count", "quota", "loop", "expected"),
    [
        (1, 3, True, "FetchManga"),
        (2, 3, True, "FetchManga"),
        (3, 3, True, "Done"),
        (4, 3, True, "Done"),
        (0, 3, False, "Done"),
    ],
)
def test_check_more_videos(count, quota, loop, expected) -> None:
    assert check_more_videos(count, quota, loop=loop) == expected
    assert more_videos(count, quota, loop) == expected  # the definition's rules say the same


@pytest.mark.parametrize(
    ("outcomes", "in_a_row", "expected"),
    [
        ([], 0, "FetchManga"),
        (["failed", "failed"], 2, "FetchManga"),
        (["failed", "failed", "published", "failed"], 1, "FetchManga"),
        (["published", "failed", "failed", "failed"], 3, "Done"),
    ],
)
def test_the_loop_stops_after_max_failed_in_a_row(outcomes, in_a_row, expected) -> None:
    assert failed_in_a_row(outcomes) == in_a_row
    assert check_more_videos(1, 10, loop=True, failed_in_a_row=in_a_row) == expected
    assert more_videos(1, 10, True, in_a_row) == expected
    assert MAX_FAILED_IN_A_ROW == 3
