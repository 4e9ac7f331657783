"""StartRenderer / WaitForRender and StartUploader / WaitForUpload, over a TaskTransport.

``start_stage("render")`` takes the seed's input ``{"job_id", "task_token"}`` (the machine
mints the token with ``task_tokens.mint_token``; a call without one gets one from the same
function) and starts the worker through the transport the ``TASK_TRANSPORT`` setting names
(``tasks/transport.py``; ``local`` by default: a process on this host), handing it a task
that holds the job, the data dir and the settings without secrets. It returns the seed's
start output plus the token::

    {"job_id": ..., "instance_id": "pid-12345", "instance_type": "local",
     "spot_request_id": null, "task_token": ..., "started_at": ...}

``wait_stage(spec)`` is the matching WaitFor* state: it looks at the token's heartbeat and
result (``task_tokens.judge``) until the worker reports; on States.HeartbeatTimeout or
States.Timeout it kills the worker (if it still runs) before raising, so the retry's new
worker is alone. A worker that ends without reporting ends the wait at once (not after
HeartbeatSeconds), with how it ended and the end of its log in the cause: one that
*exited* with a code is States.TaskFailed; one that was *lost* (killed, its pid gone or
reused: ``transport.alive``) is ``WorkerLost``, which the machine relaunches at the Start*
state (``engine/machine.py``). Whatever the outcome, the task is ended when the wait ends;
a wait cancelled because the daemon stops leaves it, so the resumed wait finds the
worker's heartbeat and result under the same token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline.engine.definition import StateSpec
from services.pipeline.errors import TaskFailed, WorkerLost
from services.pipeline.tasks.task_tokens import TaskReport, Waiting, judge, mint_token
from services.pipeline.tasks.transport import TaskTransport, transport_for
from services.pipeline.workspace import Workspace
from services.scheduler.clock import utc_now

__all__ = ["POLL_SECONDS", "owned_tokens", "start_stage", "sweep_at_start", "transport_of", "wait_stage"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5


def transport_of(context: Any, task: str | None = None, job_id: str | None = None) -> TaskTransport:
    """The TaskTransport for ``task`` (``render`` / ``upload``) of ``job_id``: ``spot`` when
    its RENDER_BACKEND / UPLOAD_BACKEND says so (the job's account's, ``[accounts.<id>]``),
    else the one TASK_TRANSPORT names."""
    settings = _job_settings(context, job_id)
    name = "spot" if task and getattr(settings, f"{task}_backend", "local") == "spot" else settings.task_transport
    return transport_for(name, Path(context.data_dir), settings)


def _job_settings(context: Any, job_id: str | None) -> Any:
    """The settings of the job's account (its ``source.json`` names it), else the run's."""
    settings = context.settings
    if not job_id or not getattr(settings, "accounts", None):
        return settings
    try:
        source = Workspace(Path(context.data_dir), job_id).read("source.json")
    except (OSError, ValueError):
        return settings
    return settings.for_account(str(source.get("account_id") or "default"))


_LIVE = ("pending", "scheduled", "running")
_STARTS = ("StartRenderer", "StartUploader")


def owned_tokens(context: Any) -> set[str]:
    """The task tokens a job still waits on: those of the Start* outputs in the
    checkpoints of the jobs not yet finished (the orphan sweep spares their workers)."""
    owned: set[str] = set()
    for job in getattr(context, "jobs", lambda: [])():
        if getattr(job.status, "value", job.status) not in _LIVE:
            continue
        outputs = ((job.model_extra or {}).get("pipeline") or {}).get("outputs") or {}
        for state in _STARTS:
            token = (outputs.get(state) or {}).get("task_token")
            if token:
                owned.add(str(token))
    return owned


_SWEPT: set[Path] = set()


def sweep_at_start(context: Any) -> list[str]:
    """Once per process and data dir (the daemon's first video run after a start): when a
    task runs on Spot, terminate this project's instances that no unfinished job owns (a
    worker left by a daemon that died with its job's record gone). A job resumed from its
    checkpoint keeps its worker: it re-attaches under the same token. Never fails the run."""
    where = Path(context.data_dir).resolve()
    if where in _SWEPT:
        return []
    try:
        settings = context.settings  # broken settings: the run's first stage says so, not this
        views = [settings, *(settings.for_account(name) for name in settings.accounts)]
        if not any("spot" in (v.render_backend, v.upload_backend) for v in views):
            return []
        _SWEPT.add(where)
        return transport_for("spot", where, settings).sweep_orphans(owned_tokens(context))
    except Exception:
        logger.exception("the Spot orphan sweep failed; the next launch sweeps again", extra={"stage": "spot"})
        return []


def start_stage(task: str, heartbeat_seconds: float | None, *, clock: Callable[[], datetime] = utc_now,
                timeout_seconds: float | None = None):
    """The Start* stage of ``task`` (``render`` or ``upload``); ``timeout_seconds`` is its
    WaitFor* state's, which a Spot instance's own deadline follows."""
    every = (heartbeat_seconds or 300) / 5

    def start(event: dict[str, Any], context: Any) -> dict[str, Any]:
        job_id = str(event["job_id"])
        token = str(event.get("task_token") or mint_token())
        transport = transport_of(context, task, job_id)
        sweep = getattr(transport, "sweep_orphans", None)
        if sweep is not None:  # workers no job waits on any more (a daemon that died, a job removed)
            sweep(owned_tokens(context) | {token})
        started = transport.start(
            token,
            {
                "task": task,
                "job_id": job_id,
                "data_dir": str(Path(context.data_dir).resolve()),
                "settings": context.settings.for_worker(),
                "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                **({"timeout_seconds": timeout_seconds} if timeout_seconds else {}),
            },
            heartbeat_seconds=every,
        )
        return {"job_id": job_id, **started, "task_token": token, "started_at": clock().isoformat()}

    return start


def wait_stage(
    spec: StateSpec, task: str | None = None, *, clock: Callable[[], datetime] = utc_now, poll: float = POLL_SECONDS
):
    """The WaitFor* stage of ``task`` for a state with ``spec``'s HeartbeatSeconds and TimeoutSeconds."""

    async def wait(event: dict[str, Any], context: Any) -> dict[str, Any]:
        token = str(event["task_token"])
        started = datetime.fromisoformat(str(event["started_at"]))
        transport = transport_of(context, task, str(event.get("job_id") or "") or None)
        while True:
            report = TaskReport(last_heartbeat=transport.heartbeat(token), result=transport.result(token))
            try:
                seen = judge(
                    report,
                    started=started,
                    now=clock(),
                    heartbeat_seconds=spec.heartbeat_seconds,
                    timeout_seconds=spec.timeout_seconds,
                )
            except Exception:
                # still running, and still our worker: kill it, so a retry's is alone
                transport.end(token, kill=transport.alive(token) is None)
                raise
            if not isinstance(seen, Waiting):
                transport.end(token, kill=False)
                spend = getattr(transport, "spend", None)  # a Spot run: its type, seconds, cost
                record = spend(token) if spend is not None else None
                return {**seen, "spot": record} if record else seen
            ended = transport.alive(token)
            if ended is not None and transport.result(token) is None:
                # the worker ended without a result: say so now rather than sit out
                # HeartbeatSeconds; lost (killed, gone) is relaunched, exited is a failure
                cause = f"the worker {ended.how} without reporting; " + transport.log_tail(token)
                # what it started (ffmpeg) goes with it, when its process group is known
                transport.end(token, kill=ended.reaped and ended.lost)
                raise WorkerLost(cause) if ended.lost else TaskFailed(cause)
            # cancelled here (daemon stopping): the task stays, so a resumed wait finds the
            # worker's heartbeat and result under the same token
            await asyncio.sleep(min(poll, seen.recheck_seconds) or poll)

    return wait
