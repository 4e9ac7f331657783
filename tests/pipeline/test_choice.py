"""The generic engine: Choice rules, paths and Parameters, and a machine that knows nothing
of the pipeline running a definition of its own."""

from __future__ import annotations

import pytest

from services.pipeline.engine.choice import check_rule, choose, holds
from services.pipeline.engine.definition import Definition
from services.pipeline.engine.machine import Checkpoint, Machine, PipelineFailed
from services.pipeline.engine.paths import parameters, resolve
from services.pipeline.errors import DefinitionError
from services.pipeline.stages import pipeline_definition

DOC = {"quotaCheck": {"quota_reached": True, "daily_quota": 10}, "daily_count": 3, "loop": True, "name": "x"}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.quotaCheck.quota_reached", "BooleanEquals": True}, True),
        ({"Variable": "$.quotaCheck.quota_reached", "BooleanEquals": False}, False),
        ({"Variable": "$.daily_count", "NumericLessThanPath": "$.quotaCheck.daily_quota"}, True),
        ({"Variable": "$.daily_count", "NumericGreaterThanEquals": 3}, True),
        ({"Variable": "$.daily_count", "NumericGreaterThan": 3}, False),
        ({"Variable": "$.daily_count", "NumericEquals": 3}, True),
        ({"Variable": "$.name", "StringEquals": "x"}, True),
        ({"Variable": "$.name", "NumericEquals": 3}, False),  # the wrong type is false, not an error
        ({"Variable": "$.loop", "NumericEquals": 1}, False),  # a bool is not a number
        ({"Variable": "$.missing.deep", "IsPresent": True}, False),
        ({"Variable": "$.quotaCheck", "IsPresent": True}, True),
        ({"Variable": "$.missing", "IsNull": True}, True),
        ({"Not": {"Variable": "$.loop", "BooleanEquals": True}}, False),
        ({"And": [{"Variable": "$.loop", "BooleanEquals": True}, {"Variable": "$.daily_count", "NumericLessThan": 4}]}, True),
        ({"Or": [{"Variable": "$.loop", "BooleanEquals": False}, {"Variable": "$.name", "StringEquals": "y"}]}, False),
    ],
)
def test_a_rule_holds_as_step_functions_reads_it(rule, expected) -> None:
    check_rule({**rule, "Next": "X"})
    assert holds(rule, DOC) is expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"Variable": "$.a", "BooleanEquals": True}, "needs Next"),
        ({"Variable": "a", "BooleanEquals": True, "Next": "X"}, "needs a Variable path"),
        ({"Variable": "$.a", "Next": "X"}, "exactly one comparison"),
        ({"Variable": "$.a", "BooleanEquals": True, "StringEquals": "b", "Next": "X"}, "exactly one comparison"),
        ({"Variable": "$.a", "NumericLessThn": 3, "Next": "X"}, "unknown comparison 'NumericLessThn'"),
        ({"Variable": "$.a", "NumericLessThanPath": "3", "Next": "X"}, "takes a path"),
        ({"And": [], "Next": "X"}, "non-empty list"),
        ({"Not": {"Variable": "$.a", "IsNull": True, "Next": "Y"}, "Next": "X"}, "top-level rule only"),
    ],
)
def test_a_bad_rule_is_named(rule, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_rule(rule)


def test_choose_takes_the_first_rule_that_holds_else_the_default() -> None:
    rules = [
        {"Variable": "$.daily_count", "NumericGreaterThan": 5, "Next": "Many"},
        {"Variable": "$.daily_count", "NumericGreaterThan": 1, "Next": "Some"},
        {"Variable": "$.daily_count", "NumericGreaterThan": 0, "Next": "One"},
    ]
    assert choose(rules, "None", DOC) == "Some"
    assert choose(rules, "None", {"daily_count": 0}) == "None"
    assert choose(rules, None, {}) is None


def test_paths_and_parameters() -> None:
    assert resolve("$", DOC) is DOC
    assert resolve("$.quotaCheck.daily_quota", DOC) == 10
    assert resolve("$.quotaCheck.nothing.deeper", DOC) is None  # missing: null, on purpose
    assert resolve("$$.Task.Token", DOC, {"Task": {"Token": "t1"}}) == "t1"
    with pytest.raises(ValueError, match="not a reference path"):
        resolve("quotaCheck", DOC)
    built = parameters(
        {"count.$": "$.daily_count", "token.$": "$$.Task.Token", "fixed": 1, "inner": {"q.$": "$.quotaCheck.daily_quota"}},
        DOC,
        {"Task": {"Token": "t1"}},
    )
    assert built == {"count": 3, "token": "t1", "fixed": 1, "inner": {"q": 10}}


def test_the_pipeline_choices_live_in_the_definition() -> None:
    definition = pipeline_definition()
    quota = definition.state("QuotaChoice")
    assert quota.choices[0]["Variable"] == "$.quotaCheck.quota_reached"
    assert definition.state("CheckQuota").result_path == "$.quotaCheck"
    more = definition.state("CheckMoreVideos")
    loop_rule = more.choices[1]["And"]
    assert {"Variable": "$.daily_count", "NumericLessThanPath": "$.daily_quota"} in loop_rule
    assert definition.state("WaitForRender").started_by == "StartRenderer"


# -- a machine on a definition of its own -----------------------------------------------------

TOY = {
    "StartAt": "Count",
    "States": {
        "Count": {
            "Type": "Task",
            "Next": "Enough",
            "ResultPath": "$.counted",
            "Parameters": {"start.$": "$.manga", "token.$": "$$.Task.Token"},
        },
        "Enough": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.counted.n", "NumericGreaterThanEquals": 3, "Next": "Big"}],
            "Default": "Small",
        },
        "Big": {"Type": "Succeed"},
        "Small": {"Type": "Succeed"},
    },
}


async def test_a_machine_runs_any_definition_through_its_rules() -> None:
    definition = Definition.model_validate(TOY)
    seen: list[dict] = []

    def count(event: dict, context: object) -> dict:
        seen.append(event)
        return {"n": len(event["start"])}

    async def save(cp: Checkpoint) -> None:
        return None

    machine = Machine(definition, {"Count": count}, save=save, clock=lambda: None)  # type: ignore[arg-type]
    big = await machine.run(Checkpoint(state="Count", manga="abcd"))
    small = await machine.run(Checkpoint(state="Count", manga="ab"))
    assert (big.state, small.state) == ("Big", "Small")
    assert seen[0]["start"] == "abcd" and seen[0]["token"].startswith("t") and seen[0]["token"] != seen[1]["token"]
    assert machine.document(big)["counted"] == {"n": 4}


async def test_no_rule_and_no_default_fails_the_run_with_its_error_name() -> None:
    toy = {**TOY, "States": {**TOY["States"], "Enough": {**TOY["States"]["Enough"], "Default": None}}}
    toy["States"]["Enough"] = {k: v for k, v in toy["States"]["Enough"].items() if v is not None}
    definition = Definition.model_validate(toy)

    async def save(cp: Checkpoint) -> None:
        return None

    machine = Machine(definition, {"Count": lambda e, c: {"n": 1}}, save=save, clock=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(PipelineFailed, match="States.NoChoiceMatched"):
        await machine.run(Checkpoint(state="Count", manga="a"))


def test_a_choice_state_is_checked_like_the_others(tmp_path) -> None:
    import json

    broken = json.loads(json.dumps(TOY))
    broken["States"]["Enough"]["Choices"][0]["Next"] = "Nowhere"
    with pytest.raises(ValueError, match="Next 'Nowhere' is not a state"):
        Definition.model_validate(broken)
    broken = json.loads(json.dumps(TOY))
    broken["States"]["Enough"]["Next"] = "Big"
    with pytest.raises(ValueError, match="a Choice state has Choices and Default"):
        Definition.model_validate(broken)
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(TOY))
    with pytest.raises(DefinitionError, match="missing states: CheckQuota"):
        pipeline_definition(path)
