"""The definition file: the seed's numbers by default, and clear errors for a broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.pipeline.engine.definition import DEFAULT_DEFINITION_PATH, load_definition
from services.pipeline.errors import DefinitionError
from services.pipeline.stages import pipeline_definition
from services.pipeline.stages.names import State

SEED_TASKS = {
    # state: (TimeoutSeconds, HeartbeatSeconds, first retrier's MaxAttempts, IntervalSeconds)
    "FetchManga": (900, None, 2, 60),
    "GenerateScript": (900, None, 2, 60),
    "GenerateTTS": (900, None, 2, 60),
    "StartRenderer": (300, None, 3, 30),
    "WaitForRender": (14400, 300, 2, 30),
    "StartUploader": (300, None, 3, 30),
    "Cleanup": (300, None, 3, 30),
    "IncrementCounter": (60, None, 5, 5),
}


def test_the_shipped_definition_has_the_seeds_numbers() -> None:
    definition = pipeline_definition()
    assert set(definition.states) == set(State)
    for name, (timeout, heartbeat, attempts, interval) in SEED_TASKS.items():
        spec = definition.state(name)
        assert (spec.timeout_seconds, spec.heartbeat_seconds) == (timeout, heartbeat), name
        every = spec.retry[-1]  # the seed's retrier, after any named one that never retries
        assert (every.max_attempts, every.interval_seconds) == (attempts, interval), name
        assert every.backoff_rate == 2.0
    script = definition.state("GenerateScript").retry[0]  # a refused LLM key is not tried again
    assert (script.error_equals, script.max_attempts) == (("LLMAuthError",), 0)
    upload = definition.state("WaitForUpload")
    assert (upload.timeout_seconds, upload.heartbeat_seconds) == (7200, 300)
    assert [c.next for c in upload.catch] == ["QuotaReached", "HandleError"]


def broken(tmp_path: Path, change) -> Path:
    raw = json.loads(DEFAULT_DEFINITION_PATH.read_text())
    change(raw["States"])
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["FetchManga"]["Retry"].insert(0, {"ErrorEquals": ["States.ALL"]}),
            "must be in the last entry",
        ),
        (lambda s: s["FetchManga"]["Catch"][0].update(ErrorEquals=["States.ALL", "X"]), "must be alone"),
        (lambda s: s["FetchManga"].update(Next="Nowhere"), "Next 'Nowhere' is not a state"),
        (lambda s: s.pop("Cleanup"), "missing states: Cleanup"),
        (lambda s: s["WaitForRender"].update(HeartbeatSeconds=20000), "HeartbeatSeconds must be smaller"),
        (lambda s: s["FetchManga"]["Retry"][0].update(BackoffRate=0.5), "greater than or equal to 1"),
        (lambda s: s["FetchManga"]["Retry"][0].update(MaxAttemps=2), "Extra inputs are not permitted"),
    ],
)
def test_a_broken_definition_is_refused_with_the_place(tmp_path: Path, change, message) -> None:
    with pytest.raises(DefinitionError, match=message):
        pipeline_definition(broken(tmp_path, change))


def test_unreadable_and_invalid_json_files(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read pipeline definition"):
        load_definition(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DefinitionError, match="not valid JSON"):
        load_definition(bad)
