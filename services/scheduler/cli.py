"""The command line: ``run_scheduler.py`` parses, picks a backend, calls one method.

With no daemon running, a command takes the data-dir lock and works on the files itself;
with a daemon running, it sends the command to the daemon's local API. Either way the
same checks apply: a ``NewJob`` checks the fields, one JobManager the rest. Exit codes:
0 success, 2 invalid input or usage (one line on stderr naming the field and the rule),
1 anything else, 141 when the reader of stdout went away (``| head``; see ``output.py``).

``add-job`` mints the job's id itself (or takes ``--job-id``) and sends it with the
create, so a create whose answer was lost (the daemon did not answer in time) can be sent
again without making a second job: the repeat answers with the first one's job. Commands
that only read (``list``, ``show``, the pipeline's ``quota``) never create the data dir.
The schedule commands (``schedule …``, ``executions``, ``stats``) are ``cli_schedules.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo
from typing import Any, NoReturn, Protocol

from .api_token import read_token
from .clock import parse_instant, utc_now
from .daemon_client import DaemonClient
from .errors import (
    DaemonUnavailableError,
    JobValidationError,
    LockHeldError,
    SchedulerError,
)
from .extensions import Extension
from .lock import DataDirLock, read_holder
from .log_format import configure_logging
from .models import JobPriority, ScheduledJob, check_job_id, schedule_warnings
from .new_job import NewJob
from .output import EXIT_BROKEN_PIPE, Output, OutputFailed, printable
from .scheduler import Scheduler
from .settings import Settings

__all__ = ["main", "read_jobs", "with_backend"]

PROG = "run_scheduler.py"
LOCK_WAIT_SECONDS = 30.0  # how long a command waits for another command (or a starting daemon)


class _UsageError(Exception):
    """argparse found a usage mistake."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


class Backend(Protocol):
    """What a command needs: the daemon client or a Scheduler on the files."""

    def add(self, new: NewJob) -> ScheduledJob: ...
    def list_jobs(self, account_id: str | None = ..., status: str | None = ...) -> list[ScheduledJob]: ...
    def get_job(self, job_id: str) -> ScheduledJob: ...
    def remove_job(self, job_id: str) -> ScheduledJob: ...


def build_parser(extensions: Sequence[Extension] = ()) -> argparse.ArgumentParser:
    """The argument parser (exposed for --help text and tests)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir", default=argparse.SUPPRESS,
        help="data directory (env DATA_DIR, default ./data)",
    )
    parser = _Parser(prog=PROG, description="Self-hosted job scheduler for automated video channels.", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    add = sub.add_parser("add-job", parents=[common], help="add a job")
    add.add_argument("--account", required=True, help="account id")
    add.add_argument("--content", required=True, help="what to do (at most 500 characters)")
    add.add_argument("--at", dest="when", help="ISO-8601 time; without an offset it is SCHEDULER_TIMEZONE time (default: now)")
    add.add_argument("--priority", default="normal", help="low|normal|high|urgent or 1..4 (default normal)")
    add.add_argument("--max-retries", default="3", help="retries after a failure (default 3)")
    add.add_argument("--kind", default=None,
                     help="handler that runs the job (default: pipeline.video with the pipeline, else log)")
    add.add_argument(
        "--job-id",
        help="the new job's id (default: a new UUID); the same add-job sent again with the same "
        "id adds nothing and answers with that job (safe to retry)",
    )
    add.add_argument("--json", action="store_true", help="print the job as JSON")

    lst = sub.add_parser("list", parents=[common], help="list jobs, highest priority first, then earliest")
    lst.add_argument("--account", help="only this account")
    lst.add_argument("--status", help="only this status")
    lst.add_argument("--json", action="store_true", help="print a JSON array")

    show = sub.add_parser("show", parents=[common], help="show one job")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="print the job as JSON")

    remove = sub.add_parser("remove", parents=[common], help="remove a job")
    remove.add_argument("job_id")
    remove.add_argument("--json", action="store_true", help="print the removed job as JSON")

    run = sub.add_parser("run", parents=[common], help="run the scheduler daemon in the foreground")
    run.add_argument("--once", action="store_true", help="process what is due now, then exit")
    from .cli_schedules import add_schedule_commands  # here: that module builds on this one

    add_schedule_commands(sub, common)  # schedule ..., executions, stats
    for extension in extensions:
        extension.add_commands(sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None,
    environ: dict[str, str] | None = None,
    extensions: Sequence[Extension] = (),
) -> int:
    """Run one command; return its exit code. ``extensions`` add kinds and commands."""
    env = dict(os.environ if environ is None else environ)
    parser = build_parser(extensions)
    out = Output()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise _UsageError(f"a command is required: {_command_names(parser)}")
        args.out = out
        args.extensions = tuple(extensions)
        settings = Settings.from_env(env, data_dir=getattr(args, "data_dir", None))
        if args.command == "run":
            return _run(settings, once=args.once, extensions=extensions)
        if getattr(args, "run", None) is not None:  # a command an extension added
            code = int(args.run(args, settings))
        else:
            configure_logging("WARNING", sys.stderr)
            command = getattr(args, "with_backend", None) or _COMMANDS[args.command]  # cli_schedules' own
            code = _with_backend(
                settings,
                lambda backend: command(backend, args, settings),
                extensions,
                writes=getattr(args, "writes", args.command == "add-job"),
            )
        out.flush()
        return code
    except OutputFailed as exc:
        out.discard()
        if exc.closed:  # the reader has gone (`| head`): end quietly, as Unix tools do
            return EXIT_BROKEN_PIPE
        _fail(exc.message())
        return 1
    except _UsageError as exc:
        _fail(f"usage: {exc} (see {PROG} --help)")
        return 2
    except SchedulerError as exc:
        _fail(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _command_names(parser: argparse.ArgumentParser) -> str:
    """Every command the parser knows, for the "a command is required" line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names = list(action.choices)
            return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    return "none"


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _run(settings: Settings, *, once: bool, extensions: Sequence[Extension] = ()) -> int:
    from .daemon import serve  # FastAPI and uvicorn load only for the daemon

    configure_logging(settings.log_level)
    return asyncio.run(serve(settings, once=once, extensions=extensions))


# -- choosing the backend ---------------------------------------------------------------


def read_jobs(settings: Settings) -> list[ScheduledJob]:
    """Every job of ``settings.data_dir`` as the scheduler owning it has them, changing nothing.

    The files, read under the data-dir lock like ``list`` (no recovery, nothing saved), or
    the running daemon's API when the daemon holds the lock. DataDirMissingError if the
    data dir does not exist (it is not created).
    """
    jobs: list[ScheduledJob] = []

    def read(backend: Any) -> int:
        jobs.extend(backend.list_jobs())
        return 0

    _with_backend(settings, read, writes=False)
    return jobs


def with_backend(
    settings: Settings, command: Any, extensions: Sequence[Extension] = (), *, writes: bool = True
) -> int:
    """Run ``command(backend) -> exit code`` with the data dir's one writer: a loaded
    ``Scheduler`` on the files when the lock is free (its jobs loaded; call
    ``backend.schedules.load()`` for the schedules), else a ``DaemonClient`` to the daemon.
    For commands of packages built on the scheduler (the pipeline's ``daily``)."""
    return _with_backend(settings, command, extensions, writes=writes)


def _with_backend(
    settings: Settings, command: Any, extensions: Sequence[Extension] = (), *, writes: bool = True
) -> int:
    """Run ``command(backend)`` on the files (lock free) or through the daemon (lock held).

    ``writes=False`` (every command but add-job): a data dir that does not exist is an
    error (DataDirMissingError), not made.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            with _open_backend(settings, deadline, extensions, writes=writes) as backend:
                return command(backend)
        except DaemonUnavailableError:
            # The daemon is stopping or starting: try again, maybe without it.
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def _open_backend(
    settings: Settings, deadline: float, extensions: Sequence[Extension] = (), *, writes: bool = True
) -> Iterator[Backend]:
    lock = DataDirLock(settings.data_dir, "cli", create=writes)
    while True:
        if lock.try_acquire():
            try:
                scheduler = Scheduler.from_settings(settings, extensions=extensions)
                scheduler.manager.load()
                try:
                    yield scheduler
                finally:  # the audit lines of the command's changes are on disk before it returns
                    scheduler.audit.close()
            finally:
                lock.release()
            return
        holder = read_holder(settings.data_dir)
        if holder and holder.get("role") == "daemon" and holder.get("ready") and holder.get("api_port"):
            client = DaemonClient(
                int(holder["api_port"]), read_token(settings.data_dir), timeout=settings.api_timeout_seconds
            )
            try:
                yield client
            finally:
                client.close()
            return
        if time.monotonic() >= deadline:
            raise LockHeldError(str(settings.data_dir), holder)
        time.sleep(0.01)


# -- the commands ----------------------------------------------------------------------


def _cmd_add(backend: Backend, args: argparse.Namespace, settings: Settings) -> int:
    out: Output = args.out
    when = None
    if args.when is not None:
        try:
            when = parse_instant(args.when, settings.zone)
        except ValueError as exc:
            raise JobValidationError("scheduled_time (--at)", str(exc)) from None
    try:
        priority = JobPriority.parse(args.priority)
    except ValueError as exc:
        raise JobValidationError("priority", str(exc)) from None
    max_retries = _int_field("max_retries", args.max_retries)
    # the id is minted here, so a create that timed out can be sent again without a duplicate
    job_id = check_job_id(args.job_id) if args.job_id is not None else str(uuid.uuid4())
    new = NewJob(
        account_id=args.account, content=args.content, scheduled_time=when,
        priority=priority, max_retries=max_retries, kind=args.kind, job_id=job_id,
    )
    job = backend.add(new)
    out.changed(f"the job was added: {job.job_id} (see `show {job.job_id}`)")
    warnings = schedule_warnings(job, utc_now())
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if args.json:
        answer = job.to_dict() | ({"warnings": warnings} if warnings else {})
        out.line(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        out.line(job.job_id)
    return 0


def _cmd_list(backend: Backend, args: argparse.Namespace, settings: Settings) -> int:
    jobs = backend.list_jobs(args.account, args.status)
    if args.json:
        args.out.line(json.dumps([job.to_dict() for job in jobs], ensure_ascii=False, indent=2))
    else:
        args.out.line(_table(jobs, settings.zone, settings.timezone_name))
    return 0


def _cmd_show(backend: Backend, args: argparse.Namespace, settings: Settings) -> int:
    out: Output = args.out
    job = backend.get_job(check_job_id(args.job_id))
    if args.json:
        out.line(json.dumps(job.to_dict(), ensure_ascii=False, indent=2))
        return 0
    for key, value in job.to_dict().items():
        instant = getattr(job, key, None) if key in _INSTANT_KEYS else None
        if isinstance(instant, datetime):
            value = f"{value}  ({instant.astimezone(settings.zone):%Y-%m-%d %H:%M:%S} {settings.timezone_name})"
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        out.line(printable(f"{key:>15}: {'' if value is None else value}"))
    return 0


def _cmd_remove(backend: Backend, args: argparse.Namespace, settings: Settings) -> int:
    job = backend.remove_job(check_job_id(args.job_id))
    args.out.changed(f"the job was removed: {job.job_id}")
    if args.json:
        args.out.line(json.dumps({"removed": job.to_dict()}, ensure_ascii=False, indent=2))
    else:
        args.out.line(f"removed {job.job_id}")
    return 0


_INSTANT_KEYS = frozenset({"scheduled_time", "created_at", "updated_at", "started_at", "completed_at"})

_COMMANDS = {"add-job": _cmd_add, "list": _cmd_list, "show": _cmd_show, "remove": _cmd_remove}


def _int_field(field: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise JobValidationError(field, f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise JobValidationError(field, f"must be an integer >= 0, got {value}")
    return value


def _table(jobs: list[ScheduledJob], zone: tzinfo, zone_name: str) -> str:
    headers = ["JOB_ID", "ACCOUNT", "KIND", "STATUS", "PRIORITY", f"SCHEDULED ({zone_name})", "RETRIES", "CONTENT"]
    rows = [
        [
            job.job_id,
            printable(job.account_id),
            printable(job.kind),
            job.status.value,
            job.priority.name.lower(),
            f"{job.scheduled_time.astimezone(zone):%Y-%m-%d %H:%M:%S}",
            f"{job.retry_count}/{job.max_retries}",
            _shorten(job.content, 40),
        ]
        for job in jobs
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.append(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}")
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
