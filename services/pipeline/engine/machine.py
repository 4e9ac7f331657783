"""The state machine runner: the seed's Step Functions execution, as one coroutine.

``Machine.run(checkpoint)`` walks the states of a ``Definition`` from the checkpoint's
state until a Succeed state, calling each Task state's stage with the input its
Parameters build (``paths.py``), applying the state's TimeoutSeconds, Retry and Catch
(decisions in ``policy.py``), and at each Choice state taking the first rule that holds
(``choice.py``). It knows nothing of what the states do: the job kind that runs it hands
it ``hooks`` (``RunHooks``) that add its own variables to the run's document and keep its
own records after a Task or a Choice (the pipeline's are ``jobs/run_document.py``).

The run's document (``$``): the checkpoint's ``manga``, ``account_id``, ``loop``,
``video_job_id`` and ``error`` (the last caught error: Error, Cause, state), each finished
Task's output at its ResultPath (default ``$.<state name>``), and the hooks' variables.
The context object (``$$``): ``$$.Task.Token``, a task token minted for this call
(``tasks/task_tokens.mint_token``), ``$$.State.Name``.

After every state, and before every retry wait, it hands the checkpoint
to ``save``, which makes it durable (the job record, through the scheduler's storage).
A run that starts from a saved checkpoint resumes at the first unfinished state: states
already finished are not run again, and a retry wait already begun only waits out its
rest. A stage whose output carries a non-null ``continuation_token`` (GenerateTTS on a
very long chapter) runs again with that token in its event. A WaitFor* state whose worker
was lost (``WorkerLost``: killed, or its pid gone after a restart or a reboot) goes back to
its ``StartedBy`` state at once, as a Spot interruption would: no Retry attempt, no delay,
the earlier states not run again; ``relaunches`` counts these per state for the current
video and bounds them (``policy.on_lost_worker``). A retry of such a state starts over at
its ``StartedBy`` state too, so the retry has a fresh worker.

A stage is ``handler(event: dict, context) -> dict`` (stage-functions.md). A plain
function runs in a worker thread, so a slow stage never blocks the event loop; an
``async`` one (the WaitFor* states, which poll a task token) runs on the loop. When a
stage outlives TimeoutSeconds the state fails with States.Timeout; a plain function's
thread cannot be interrupted and is left to finish on its own, its result ignored.

The checkpoint is JSON (``Checkpoint.model_dump(mode="json")``)::

    {"version": 1, "state": "GenerateTTS", "loop": false, "manga": "next", "account_id": "default",
     "video_job_id": "job-abc123",
     "outputs": {"CheckQuota": {...}, "FetchManga": {...}, "GenerateScript": {...}},
     "attempts": {"GenerateTTS": [1]}, "retry_at": "2026-11-24T01:02:00+00:00",
     "relaunches": {"WaitForRender": 1}, "error": null, "videos": [...]}
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

from services.pipeline.engine.choice import NO_CHOICE_MATCHED, choose
from services.pipeline.engine.definition import Definition, StateSpec
from services.pipeline.engine.paths import parameters
from services.pipeline.engine.policy import (
    MAX_RELAUNCHES,
    Catch,
    Retry,
    next_after_success,
    on_error,
    on_lost_worker,
)
from services.pipeline.errors import PipelineError, VideoPipelineError, error_name
from services.pipeline.tasks.task_tokens import mint_token

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "Machine", "NoHooks", "PipelineFailed", "RunHooks", "StageFunc"]

logger = logging.getLogger(__name__)

StageFunc = Callable[[dict[str, Any], Any], dict[str, Any] | Awaitable[dict[str, Any]]]


CHECKPOINT_VERSION = 1
"""The ``version`` of a saved checkpoint. One saved before the field existed loads as 1;
one of a newer version (a newer daemon wrote it) is refused rather than misread."""


class Checkpoint(BaseModel):
    """Where a run is: the state to run next and what the finished states returned."""

    version: int = CHECKPOINT_VERSION

    state: str | None = None
    """The state to run next; None: the definition's StartAt."""
    loop: bool = False
    manga: str = "next"
    account_id: str = "default"
    video_job_id: str | None = None
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    attempts: dict[str, list[int]] = Field(default_factory=dict)
    retry_at: datetime | None = None
    relaunches: dict[str, int] = Field(default_factory=dict)
    """Lost workers relaunched so far for the current video, by WaitFor* state (a
    checkpoint saved before this field loads with none)."""
    error: dict[str, Any] | None = None
    videos: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint version {value} is newer than this daemon reads ({CHECKPOINT_VERSION}): "
                "run the version that wrote it"
            )
        return value



class RunHooks(Protocol):
    """What a job kind adds to a run (see the module docstring)."""

    def variables(self, cp: Checkpoint) -> dict[str, Any]:
        """Fields the kind adds to the run's document (read by rules and Parameters)."""
        ...

    async def after_task(self, state: str, output: dict[str, Any], cp: Checkpoint) -> None:
        """A Task finished with ``output`` (saved in ``cp.outputs``); ``cp`` may be changed."""
        ...

    def after_choice(self, state: str, next_state: str, cp: Checkpoint) -> None:
        """A Choice picked ``next_state``; ``cp`` may be changed before it is saved."""
        ...


class NoHooks:
    """A run with nothing added: the document is the checkpoint and the outputs."""

    def variables(self, cp: Checkpoint) -> dict[str, Any]:
        return {}

    async def after_task(self, state: str, output: dict[str, Any], cp: Checkpoint) -> None:
        return None

    def after_choice(self, state: str, next_state: str, cp: Checkpoint) -> None:
        return None


class PipelineFailed(VideoPipelineError):
    """An error no Retry or Catch of its state handled: the run ends failed."""

    def __init__(self, state: str, error: str, cause: str) -> None:
        super().__init__(f"{state} failed with {error}: {cause}")
        self.state, self.error, self.cause = state, error, cause


class Machine:
    """Runs checkpoints through the states of ``definition``.

    :param definition: states and their policies (``load_definition()``).
    :param stages: the stage function of every Task state, by state name.
    :param save: makes a checkpoint durable; awaited after every state with a copy it may keep.
    :param clock: the wall clock (aware UTC).
    :param sleep: waits out a retry delay (``asyncio.sleep``; tests pass a fake).
    :param context: passed to every stage as its second argument. If it has a
        ``state_finished(state, seconds)`` method, that is told each Task state whose stage
        returned and how long it ran by ``clock`` (``RunContext`` feeds the metrics).
    :param hooks: what the job kind adds (``RunHooks``); default nothing.
    """

    def __init__(
        self,
        definition: Definition,
        stages: Mapping[str, StageFunc],
        *,
        save: Callable[[Checkpoint], Awaitable[None]],
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        context: Any = None,
        hooks: RunHooks | None = None,
    ) -> None:
        missing = [
            name for name, spec in definition.states.items() if spec.type == "Task" and name not in stages
        ]
        if missing:
            raise ValueError(f"no stage function for: {', '.join(sorted(missing))}")
        self.definition = definition
        self.stages = dict(stages)
        self._save = save
        self._clock = clock
        self._sleep = sleep
        self.context = context
        self.hooks: RunHooks = hooks if hooks is not None else NoHooks()

    async def run(self, checkpoint: Checkpoint) -> Checkpoint:
        """Run from ``checkpoint`` to a Succeed state; raise PipelineFailed if an error escapes."""
        cp = checkpoint.model_copy(deep=True)
        if cp.state is None:
            cp.state = self.definition.start_at
        while not self.definition.terminal(cp.state):
            await self._wait_for_retry(cp)
            spec = self.definition.state(cp.state)
            if spec.type == "Choice":
                await self._choose(cp)
                continue
            await self._task(cp)
        logger.info("pipeline run ended", extra={"stage": cp.state, "job_id": cp.video_job_id})
        return cp

    async def _wait_for_retry(self, cp: Checkpoint) -> None:
        if cp.retry_at is None:
            return
        delay = (cp.retry_at - self._clock()).total_seconds()
        if delay > 0:
            await self._sleep(delay)
        cp.retry_at = None

    def document(self, cp: Checkpoint) -> dict[str, Any]:
        """The run's document ``$`` at checkpoint ``cp`` (see the module docstring)."""
        doc: dict[str, Any] = {
            "manga": cp.manga,
            "account_id": cp.account_id,
            "loop": cp.loop,
            "video_job_id": cp.video_job_id,
            "error": cp.error,
        }
        for state, output in cp.outputs.items():
            spec = self.definition.states.get(state)
            doc[spec.result_key(state) if spec is not None else state] = output
        doc.update(self.hooks.variables(cp))
        return doc

    async def _choose(self, cp: Checkpoint) -> None:
        """A Choice state: the first rule that holds names the next state, else Default."""
        state, spec = cp.state, self.definition.state(cp.state)
        doc = self.document(cp)
        nxt = choose(spec.choices, spec.default, doc)
        if nxt is None:
            cause = f"{state}: no choice rule matched and there is no Default"
            logger.error("choice failed", extra={"stage": state, "job_id": cp.video_job_id, "cause": cause})
            await self._save(cp.model_copy(deep=True))
            raise PipelineFailed(state, NO_CHOICE_MATCHED, cause)
        self.hooks.after_choice(state, nxt, cp)
        cp.state = nxt
        await self._save(cp.model_copy(deep=True))

    async def _task(self, cp: Checkpoint) -> None:
        state = cp.state
        spec = self.definition.state(state)
        event = self._event(cp, spec)
        log = {"stage": state, "job_id": cp.video_job_id}
        logger.info("state started", extra=log)
        report = getattr(self.context, "state_finished", None)
        started = self._clock() if report is not None else None
        try:
            output = await self._call(state, event, spec.timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every stage failure goes through Retry/Catch
            await self._failed(cp, exc)
            return
        if report is not None and started is not None:
            self._report(report, state, (self._clock() - started).total_seconds())
        cp.outputs[state] = output
        cp.attempts.pop(state, None)
        await self.hooks.after_task(state, output, cp)
        cp.state = next_after_success(state, spec, output)
        await self._save(cp.model_copy(deep=True))
        logger.info("state finished", extra={**log, "next": cp.state})

    @staticmethod
    def _report(report: Callable[[str, float], Any], state: str, seconds: float) -> None:
        try:
            report(state, max(seconds, 0.0))
        except Exception:  # a metric must not fail the video
            logger.exception("state_finished failed", extra={"stage": state})

    async def _call(self, state: str, event: dict[str, Any], timeout: int | None) -> dict[str, Any]:
        stage = self.stages[state]
        if inspect.iscoroutinefunction(stage):
            call = stage(event, self.context)
        else:
            call = asyncio.to_thread(stage, event, self.context)
        async with asyncio.timeout(timeout):
            result = await call
        if not isinstance(result, dict):
            raise TypeError(f"stage {state} returned {type(result).__name__}, not a JSON object")
        return result

    async def _failed(self, cp: Checkpoint, exc: Exception) -> None:
        state = cp.state
        spec = self.definition.state(state)
        name = error_name(exc)
        timeout = spec.timeout_seconds
        if isinstance(exc, TimeoutError) and not isinstance(exc, PipelineError):
            cause = f"{state} ran longer than its TimeoutSeconds ({timeout} s)"
        else:
            cause = getattr(exc, "cause", None) or str(exc) or type(exc).__name__
        log = {"stage": state, "job_id": cp.video_job_id, "error": name, "cause": cause}
        relaunch = on_lost_worker(spec, name, cp.relaunches.get(state, 0))
        if relaunch is not None:  # not the video's failure: no attempt spent, no delay
            cp.relaunches[state] = relaunch.relaunch
            cp.outputs.pop(relaunch.start_state, None)
            cp.state = relaunch.start_state
            logger.warning(
                "worker lost; relaunching",
                extra={**log, "relaunch": relaunch.relaunch, "max_relaunches": MAX_RELAUNCHES},
            )
            await self._save(cp.model_copy(deep=True))
            return
        attempts = cp.attempts.setdefault(state, [0] * len(spec.retry))
        decision = on_error(spec, name, cause, attempts)
        if isinstance(decision, Retry):
            attempts[decision.retrier] = decision.attempt
            cp.retry_at = self._clock() + timedelta(seconds=decision.delay_seconds)
            if spec.started_by is not None:  # the worker is gone or stuck: the retry starts a new one
                cp.outputs.pop(spec.started_by, None)
                cp.state = spec.started_by
            logger.warning(
                "state failed; retrying",
                extra={**log, "attempt": decision.attempt, "delay_seconds": decision.delay_seconds},
            )
            await self._save(cp.model_copy(deep=True))
            return
        cp.attempts.pop(state, None)
        if isinstance(decision, Catch):
            cp.error = {"Error": name, "Cause": cause, "state": state}
            cp.state = decision.next_state
            logger.error("state failed; caught", extra={**log, "next": decision.next_state})
            await self._save(cp.model_copy(deep=True))
            return
        logger.error("state failed; nothing catches it", extra=log)
        await self._save(cp.model_copy(deep=True))
        raise PipelineFailed(state, name, cause)

    def _event(self, cp: Checkpoint, spec: StateSpec) -> dict[str, Any]:
        """The input of the current Task: its Parameters over the document (or the whole
        document), plus the ``continuation_token`` its last call returned, if any."""
        doc = self.document(cp)
        if spec.parameters is None:
            event = dict(doc)
        else:
            context = {"Task": {"Token": mint_token()}, "State": {"Name": cp.state}}
            event = parameters(spec.parameters, doc, context)
        token = cp.outputs.get(cp.state, {}).get("continuation_token")
        if token:  # the state runs again to go on where its last call stopped
            event["continuation_token"] = token
        return event
