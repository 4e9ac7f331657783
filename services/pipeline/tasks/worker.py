"""The render and upload workers: ``python -m services.pipeline.tasks.worker render|upload``.

A worker is started by StartRenderer / StartUploader (through the TaskTransport) with a
job id, a task token and the data dir; the rest (the settings, secrets left out, and the
log level) it reads from the task's ``task.json`` (``LocalTransport.write_task``), never
from the environment. It sends a heartbeat every ``--heartbeat-seconds`` (HeartbeatSeconds
/ 5) from a background thread while it works, and ends with one result through the task
files: success with its output, or failure with an error name (RenderError, UploadError,
or a pipeline error's own name such as YouTubeQuotaError) and a cause, as the seed's
SendTaskSuccess / SendTaskFailure. The tasks themselves are ``render_task.render`` and
``upload_task.publish``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from services.pipeline.errors import PipelineError
from services.pipeline.providers.registry import backend
from services.pipeline.settings import PipelineSettings
from services.pipeline.tasks.task_tokens import LocalTransport
from services.pipeline.tasks.upload_task import publish
from services.pipeline.workspace import Workspace
from services.scheduler.clock import utc_now
from services.scheduler.log_format import configure_logging

__all__ = ["main", "run_task"]

logger = logging.getLogger(__name__)

_ERRORS = {"render": "RenderError", "upload": "UploadError"}


def _beat(transport: LocalTransport, token: str, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            transport.heartbeat(token, utc_now())
        except OSError:
            logger.exception("could not write a heartbeat", extra={"token": token[:8]})


def run_task(
    task: str,
    job_id: str,
    token: str,
    *,
    data_dir: Path,
    heartbeat_seconds: float,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """Do ``task`` for ``job_id`` reporting under ``token`` in ``data_dir``; return the exit code."""
    transport = LocalTransport(data_dir / "tasks")
    transport.heartbeat(token, clock())
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(transport, token, heartbeat_seconds, stop), daemon=True)
    beat.start()
    log = {"job_id": job_id, "stage": f"worker:{task}"}
    try:
        settings = PipelineSettings.from_values(transport.read_task(token)["settings"])
        work = Workspace(data_dir, job_id)
        if task == "render":
            output = backend("render", settings, data_dir).render(work)
        else:
            output = publish(work, settings, clock())
    except Exception as exc:  # reported to the machine as the task's failure
        logger.exception("worker failed", extra=log)
        # a named pipeline error (YouTubeQuotaError) keeps its name for the state's Catch
        name = exc.name if isinstance(exc, PipelineError) else _ERRORS[task]
        transport.fail(token, name, f"{type(exc).__name__}: {exc}", clock())
        return 1
    finally:
        stop.set()
        beat.join(timeout=5)
    transport.succeed(token, output, clock())
    logger.info("worker done", extra=log)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of a worker (started by the machine, not by hand)."""
    parser = argparse.ArgumentParser(prog="python -m services.pipeline.tasks.worker")
    parser.add_argument("task", choices=sorted(_ERRORS))
    parser.add_argument("--job", required=True, help="the video's job id")
    parser.add_argument("--token", required=True, help="the task token to report under")
    parser.add_argument("--data-dir", required=True, type=Path, help="the scheduler's data dir")
    parser.add_argument("--heartbeat-seconds", type=float, default=60.0, help="seconds between heartbeats")
    args = parser.parse_args(argv)
    if args.heartbeat_seconds <= 0:
        parser.error("--heartbeat-seconds must be positive")
    try:
        level = str(LocalTransport(args.data_dir / "tasks").read_task(args.token).get("log_level") or "INFO")
    except (OSError, ValueError):
        level = "INFO"  # run_task reports the unreadable task file as the task's failure
    configure_logging(level)
    return run_task(
        args.task, args.job, args.token, data_dir=args.data_dir, heartbeat_seconds=args.heartbeat_seconds
    )


if __name__ == "__main__":
    sys.exit(main())
