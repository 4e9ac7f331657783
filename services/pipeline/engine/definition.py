"""A state machine definition: Task, Choice and Succeed states, as Amazon States Language.

It is read from a JSON file (the pipeline's is ``config/pipeline.json``), a subset of the
Amazon States Language with the same field names and defaults, so the seed's numbers read
as they did in Step Functions:

- a Task has ``Next``, and may have ``TimeoutSeconds``, ``HeartbeatSeconds``, ``Retry``,
  ``Catch``, ``Parameters`` (its input, built from paths: ``paths.py``) and ``ResultPath``
  (where its output goes in the run's document; default ``$.<state name>``);
- a Choice has ``Choices`` (rules: ``choice.py``) and ``Default``;
- a Succeed ends the run;

- a retrier is ``{"ErrorEquals": [...], "IntervalSeconds": 1, "MaxAttempts": 3,
  "BackoffRate": 2.0, "MaxDelaySeconds": null, "JitterStrategy": "NONE"}`` (those are the
  defaults); ``MaxAttempts: 0`` means "never retry these errors";
- a catcher is ``{"ErrorEquals": [...], "Next": "State"}``;
- ``States.ALL`` must be alone in its ErrorEquals and in the last retrier / catcher.

One field is this product's, not Step Functions': ``StartedBy`` on a Task that waits for
a worker another Task started (WaitForRender's is StartRenderer). A retry of such a state,
or a worker lost (``WorkerLost``), goes back to the state that starts a fresh worker.

The definition knows nothing of what its states do: which Task states a job kind needs is
that kind's business (``require_states``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.pipeline.engine.choice import check_rule
from services.pipeline.engine.paths import is_path
from services.pipeline.errors import ALL, DefinitionError

__all__ = [
    "Catcher",
    "DEFAULT_DEFINITION_PATH",
    "Definition",
    "Jitter",
    "Retrier",
    "StateSpec",
    "load_definition",
    "require_states",
]

DEFAULT_DEFINITION_PATH = Path(__file__).resolve().parents[3] / "config" / "pipeline.json"



class Jitter(str, Enum):
    """Retrier JitterStrategy: FULL draws the delay uniformly from [0, backoff]."""

    FULL = "FULL"
    NONE = "NONE"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Retrier(_Spec):
    """One entry of a state's Retry list (Step Functions' names and defaults)."""

    error_equals: tuple[str, ...] = Field(alias="ErrorEquals", min_length=1)
    interval_seconds: int = Field(default=1, alias="IntervalSeconds", ge=1)
    max_attempts: int = Field(default=3, alias="MaxAttempts", ge=0)
    backoff_rate: float = Field(default=2.0, alias="BackoffRate", ge=1.0)
    max_delay_seconds: int | None = Field(default=None, alias="MaxDelaySeconds", ge=1)
    jitter_strategy: Jitter = Field(default=Jitter.NONE, alias="JitterStrategy")
    comment: str | None = Field(default=None, alias="Comment")


class Catcher(_Spec):
    """One entry of a state's Catch list."""

    error_equals: tuple[str, ...] = Field(alias="ErrorEquals", min_length=1)
    next: str = Field(alias="Next")
    comment: str | None = Field(default=None, alias="Comment")


class StateSpec(_Spec):
    """One state. Task states run a stage; Choice states pick the next state by rules."""

    type: Literal["Task", "Choice", "Succeed"] = Field(alias="Type")
    next: str | None = Field(default=None, alias="Next")
    choices: tuple[dict[str, Any], ...] = Field(default=(), alias="Choices")
    default: str | None = Field(default=None, alias="Default")
    parameters: dict[str, Any] | None = Field(default=None, alias="Parameters")
    result_path: str | None = Field(default=None, alias="ResultPath")
    started_by: str | None = Field(default=None, alias="StartedBy")
    timeout_seconds: int | None = Field(default=None, alias="TimeoutSeconds", ge=1)
    heartbeat_seconds: int | None = Field(default=None, alias="HeartbeatSeconds", ge=1)
    retry: tuple[Retrier, ...] = Field(default=(), alias="Retry")
    catch: tuple[Catcher, ...] = Field(default=(), alias="Catch")
    comment: str | None = Field(default=None, alias="Comment")

    @model_validator(mode="after")
    def _check(self) -> StateSpec:
        if self.heartbeat_seconds is not None:
            if self.timeout_seconds is None or self.heartbeat_seconds >= self.timeout_seconds:
                raise ValueError("HeartbeatSeconds must be smaller than TimeoutSeconds")
        for kind, entries in (("Retry", self.retry), ("Catch", self.catch)):
            for index, entry in enumerate(entries):
                if ALL in entry.error_equals:
                    if len(entry.error_equals) != 1:
                        raise ValueError(f"{kind}[{index}]: {ALL} must be alone in ErrorEquals")
                    if index != len(entries) - 1:
                        raise ValueError(f"{kind}[{index}]: {ALL} must be in the last entry")
        if self.type == "Succeed" and (self.next or self.retry or self.catch):
            raise ValueError("a Succeed state has no Next, Retry or Catch")
        if self.type == "Task" and self.next is None:
            raise ValueError("a Task state needs Next")
        if self.type == "Choice":
            if self.next or self.retry or self.catch or self.parameters is not None:
                raise ValueError("a Choice state has Choices and Default, no Next, Retry, Catch or Parameters")
            if not self.choices:
                raise ValueError("a Choice state needs Choices")
            for index, rule in enumerate(self.choices):
                try:
                    check_rule(rule)
                except ValueError as exc:
                    raise ValueError(f"Choices[{index}]: {exc}") from None
        elif self.choices or self.default is not None:
            raise ValueError("only a Choice state has Choices and Default")
        if self.result_path is not None:
            if not is_path(self.result_path) or self.result_path.startswith("$$") or self.result_path == "$":
                raise ValueError(f"ResultPath must be a path like $.name, got {self.result_path!r}")
        if self.parameters is not None:
            _check_parameters(self.parameters)
        return self

    def result_key(self, name: str) -> str:
        """Where this state's output sits in the run's document (``$.<key>``)."""
        return self.result_path.removeprefix("$.") if self.result_path else name

    def targets(self) -> list[str]:
        """Every state this one may go to."""
        found = [self.next, self.default, self.started_by] + [c.next for c in self.catch]
        return [t for t in found + [rule["Next"] for rule in self.choices] if t is not None]


def _check_parameters(template: dict[str, Any], where: str = "Parameters") -> None:
    for key, value in template.items():
        if key.endswith(".$") and not is_path(value):
            raise ValueError(f"{where}.{key}: a key ending in .$ takes a path, got {value!r}")
        if isinstance(value, dict):
            _check_parameters(value, f"{where}.{key}")


class Definition(_Spec):
    """The whole machine: where it starts and every state by name."""

    start_at: str = Field(alias="StartAt")
    states: dict[str, StateSpec] = Field(alias="States")
    comment: str | None = Field(default=None, alias="Comment")

    @model_validator(mode="after")
    def _check(self) -> Definition:
        if self.start_at not in self.states:
            raise ValueError(f"StartAt {self.start_at!r} is not a state")
        for name, spec in self.states.items():
            for target in spec.targets():
                if target not in self.states:
                    raise ValueError(f"{name}: Next {target!r} is not a state")
            if spec.started_by is not None and self.states[spec.started_by].type != "Task":
                raise ValueError(f"{name}: StartedBy {spec.started_by!r} is not a Task state")
        return self

    def terminal(self, name: str) -> bool:
        """Whether state ``name`` ends a run (a Succeed state)."""
        return self.states[name].type == "Succeed"

    def state(self, name: str) -> StateSpec:
        """The spec of state ``name`` (KeyError if there is none)."""
        return self.states[name]


def require_states(definition: Definition, tasks: Iterable[str], others: Iterable[str] = ()) -> None:
    """Check that ``definition`` has the Task states ``tasks`` (a job kind's stages) and the
    states ``others``, and no Task state without a stage; DefinitionError otherwise."""
    tasks, others = list(tasks), list(others)
    missing = [name for name in [*tasks, *others] if name not in definition.states]
    if missing:
        raise DefinitionError(f"missing states: {', '.join(missing)}")
    not_tasks = [name for name in tasks if definition.states[name].type != "Task"]
    if not_tasks:
        raise DefinitionError(f"not Task states: {', '.join(not_tasks)}")
    extra = sorted(n for n, spec in definition.states.items() if spec.type == "Task" and n not in tasks)
    if extra:
        raise DefinitionError(f"Task states without a stage: {', '.join(extra)} (stages: {', '.join(tasks)})")


def load_definition(path: Path | str | None = None, *, required: Iterable[str] = ()) -> Definition:
    """Read and check a definition file (default ``config/pipeline.json``).

    ``required``: states the caller needs, named first when missing (before the checks a
    missing state would trip). Raises DefinitionError with the file, the state and the
    field that is wrong.
    """
    source = Path(path) if path is not None else DEFAULT_DEFINITION_PATH
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read pipeline definition {source}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{source}: not valid JSON: {exc}") from None
    states = raw.get("States") if isinstance(raw, dict) else None
    missing = [name for name in required if isinstance(states, dict) and name not in states]
    if missing:
        raise DefinitionError(f"{source}: missing states: {', '.join(missing)}")
    try:
        return Definition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "definition"
        message = first["msg"].removeprefix("Value error, ")
        raise DefinitionError(f"{source}: {where}: {message}") from None
