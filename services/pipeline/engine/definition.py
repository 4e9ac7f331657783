"""The pipeline definition: each state's Next, Retry, Catch, TimeoutSeconds, HeartbeatSeconds.

It is read from ``config/pipeline.json``, a subset of the Amazon States Language with the
same field names and defaults, so the seed's numbers read as they did in Step Functions:

- a retrier is ``{"ErrorEquals": [...], "IntervalSeconds": 1, "MaxAttempts": 3,
  "BackoffRate": 2.0, "MaxDelaySeconds": null, "JitterStrategy": "NONE"}`` (those are the
  defaults); ``MaxAttempts: 0`` means "never retry these errors";
- a catcher is ``{"ErrorEquals": [...], "Next": "State"}``;
- ``States.ALL`` must be alone in its ErrorEquals and in the last retrier / catcher.

What is *not* in the file: the three choices (quota reached after CheckQuota, no manga
after FetchManga, another video after CheckMoreVideos) are fixed rules in ``policy.py``;
the file cannot rewire them, only name where each Task goes next.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.pipeline.errors import ALL, DefinitionError

__all__ = [
    "Catcher",
    "DEFAULT_DEFINITION_PATH",
    "Definition",
    "Jitter",
    "REQUIRED_STATES",
    "Retrier",
    "StateSpec",
    "load_definition",
]

DEFAULT_DEFINITION_PATH = Path(__file__).resolve().parents[3] / "config" / "pipeline.json"

REQUIRED_STATES = (
    "CheckQuota",
    "FetchManga",
    "GenerateScript",
    "GenerateTTS",
    "StartRenderer",
    "WaitForRender",
    "StartUploader",
    "WaitForUpload",
    "Cleanup",
    "IncrementCounter",
    "CheckMoreVideos",
    "HandleError",
    "QuotaReached",
    "NoMangaAvailable",
    "Done",
)


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
    """One state. Task states run a stage; Choice states are decided by ``policy``."""

    type: Literal["Task", "Choice", "Succeed"] = Field(alias="Type")
    next: str | None = Field(default=None, alias="Next")
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
        return self


class Definition(_Spec):
    """The whole machine: where it starts and every state by name."""

    start_at: str = Field(alias="StartAt")
    states: dict[str, StateSpec] = Field(alias="States")
    comment: str | None = Field(default=None, alias="Comment")

    @model_validator(mode="after")
    def _check(self) -> Definition:
        missing = [name for name in REQUIRED_STATES if name not in self.states]
        if missing:
            raise ValueError(f"missing states: {', '.join(missing)}")
        unknown = sorted(set(self.states) - set(REQUIRED_STATES))
        if unknown:
            fixed = len(REQUIRED_STATES)
            raise ValueError(f"unknown states: {', '.join(unknown)} (the machine runs {fixed} fixed states)")
        if self.start_at not in self.states:
            raise ValueError(f"StartAt {self.start_at!r} is not a state")
        for name, spec in self.states.items():
            targets = [spec.next] + [c.next for c in spec.catch]
            for target in targets:
                if target is not None and target not in self.states:
                    raise ValueError(f"{name}: Next {target!r} is not a state")
        return self

    def state(self, name: str) -> StateSpec:
        """The spec of state ``name`` (KeyError if there is none)."""
        return self.states[name]


def load_definition(path: Path | str | None = None) -> Definition:
    """Read and check a definition file (default ``config/pipeline.json``).

    Raises DefinitionError with the file, the state and the field that is wrong.
    """
    source = Path(path) if path is not None else DEFAULT_DEFINITION_PATH
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read pipeline definition {source}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{source}: not valid JSON: {exc}") from None
    try:
        return Definition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "definition"
        message = first["msg"].removeprefix("Value error, ")
        raise DefinitionError(f"{source}: {where}: {message}") from None
