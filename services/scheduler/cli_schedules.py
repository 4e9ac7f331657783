"""The CLI's schedule commands: ``schedule …``, ``executions`` and ``stats``.

::

    schedule add NAME (--cron EXPR | --every 15m | --at ISO | --now) [options]
    schedule list [--tag T] [--status S] [--created-by WHO] [--limit N] [--offset N]
    schedule show|pause|resume|trigger|remove ID
    schedule update ID [the options of add]
    schedule backfill ID --from ISO --to ISO
    executions [--schedule ID] [--status S] [--limit N] [--offset N]
    stats [ID] [--days 30]

Each takes ``--json``. Like the job commands (``cli.py``) they work on the files when no
daemon holds the data dir (``DirectSchedules`` over a loaded ``ScheduleService``: each
change is on disk, its audit line and history records included, before the command
returns) and through the daemon's API when one does (``DaemonClient``'s schedule calls);
both answer with the API's shapes, so the output is the same either way. Changes are
made as ``cli:<login name>`` (the audit trail's and the history's actor).

Where a command asks for a schedule, it takes its id, a unique start of its id (at least
8 characters) or its exact name; a start that fits several ids is refused (exit 2) naming
them. Times without an offset are in the schedule's zone (``--timezone``, else
SCHEDULER_TIMEZONE), and tables show them there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from typing import Any, Protocol

from pydantic import ValidationError as PydanticValidationError

from .actor import acting_as, clean_actor
from .clock import load_timezone, local_date, parse_instant
from .daemon_client import DaemonClient
from .errors import JobValidationError, ScheduleNotFoundError, StorageError
from .models import normalize_text
from .output import Output, printable
from .schedule_model import (
    Coalesce,
    ScheduleSpec,
    ScheduleStatus,
    ScheduleUpdate,
    check_definition,
    schedule_error,
)
from .scheduler import Scheduler
from .schedules import EXECUTION_STATUSES
from .settings import Settings

__all__ = [
    "DirectSchedules",
    "ScheduleBackend",
    "add_schedule_commands",
    "cli_actor",
    "parse_duration",
    "resolve_schedule",
]

MIN_PREFIX = 8
"""The shortest start of an id taken for the id."""
PAGE = 500  # the API's largest page
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ID_START = re.compile(r"^[0-9a-fA-F-]+$")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_INSTANTS = frozenset({"run_at", "start_date", "end_date", "created_at", "updated_at", "paused_at",
                       "last_fire_time", "next_run_time", "cursor"})


class ScheduleBackend(Protocol):
    """What the schedule commands need: the daemon's API or the service on the files.

    Every answer is the API's JSON body (``api_schedules.py``).
    """

    def create_schedule(self, spec: dict[str, Any], actor: str) -> dict[str, Any]: ...
    def list_schedules(self, *, tag: str | None = ..., status: str | None = ..., created_by: str | None = ...,
                       schedule_type: str | None = ..., name: str | None = ..., limit: int = ...,
                       offset: int = ...) -> dict[str, Any]: ...
    def get_schedule(self, schedule_id: str) -> dict[str, Any]: ...
    def update_schedule(self, schedule_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]: ...
    def delete_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]: ...
    def pause_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]: ...
    def resume_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]: ...
    def trigger_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]: ...
    def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime, actor: str) -> dict[str, Any]: ...
    def list_executions(self, *, schedule_id: str | None = ..., status: str | None = ..., limit: int = ...,
                        offset: int = ...) -> dict[str, Any]: ...
    def execution_stats(self, schedule_id: str, days: int = ...) -> dict[str, Any]: ...


class DirectSchedules:
    """``ScheduleBackend`` on the files: the ``ScheduleService`` of a Scheduler this process holds
    the data-dir lock for (loaded by ``cli._open_backend``).

    A change runs on its own event loop and returns once it is durable: schedules.json
    (the service awaits it), then the audit trail and the execution history (flushed
    here). ``close`` ends their writer threads.

    :param scheduler: the Scheduler on the files, its jobs loaded.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.service = scheduler.schedules
        if not self.service.loaded:
            self.service.load()

    @property
    def default_kind(self) -> str:
        return self.scheduler.default_kind

    def close(self) -> None:
        """End the history's and the audit trail's writer threads (what is queued is written)."""
        self.service.history.close()
        if self._audit is not None:
            self._audit.close()

    @property
    def _audit(self) -> Any:
        return getattr(self.scheduler, "audit", None)  # a Scheduler without an audit trail has none

    def _change(self, actor: str, change: Callable[[], Any]) -> Any:
        async def run() -> Any:
            with acting_as(actor):
                answer = await change()
            await self._durable()
            return answer

        return asyncio.run(run())

    async def _durable(self) -> None:
        try:
            if self._audit is not None:
                await self._audit.flush()
        except StorageError as exc:
            raise exc.with_note("the change itself was saved") from None
        await self.service.history.flush()
        failure = self.service.history.write_failure
        if failure is not None:
            raise StorageError(f"cannot write the execution history in {self.service.history.folder}: {failure}; "
                               "the change itself was saved")

    def create_schedule(self, spec: dict[str, Any], actor: str) -> dict[str, Any]:
        schedule = self._change(actor, lambda: self.service.create(spec, created_by=actor))
        return self.service.describe(schedule)

    def list_schedules(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        created_by: str | None = None,
        schedule_type: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        found, total = self.service.list(tag=tag, status=status, created_by=created_by, schedule_type=schedule_type,
                                         name=name, limit=limit, offset=offset)
        page = [self.service.describe(s) for s in found]
        return {"schedules": page, "count": len(page), "total": total, "limit": limit, "offset": offset}

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.service.describe(self.service.get(schedule_id))

    def update_schedule(self, schedule_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        return self.service.describe(self._change(actor, lambda: self.service.update(schedule_id, changes)))

    def delete_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]:
        schedule = self._change(actor, lambda: self.service.delete(schedule_id))
        answer = self.service.describe(schedule)
        if not schedule.paused:  # as the API answers it: a deleted schedule fires no more
            answer["status"] = ScheduleStatus.COMPLETED.value
        return {"deleted": schedule_id, "schedule": answer}

    def pause_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        return self.service.describe(self._change(actor, lambda: self.service.pause(schedule_id, reason)))

    def resume_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        return self.service.describe(self._change(actor, lambda: self.service.resume(schedule_id, reason)))

    def trigger_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]:
        job = self._change(actor, lambda: self.service.trigger(schedule_id, triggered_by=actor))
        return {"execution_id": job.job_id, "job": job.to_dict(), "schedule": self.get_schedule(schedule_id)}

    def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime, actor: str) -> dict[str, Any]:
        return self._change(actor, lambda: self.service.backfill(schedule_id, start, end, triggered_by=actor))

    def list_executions(
        self, *, schedule_id: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        records, more = self.service.history.list(schedule_id=schedule_id, status=status, limit=limit, offset=offset)
        return {"executions": records, "count": len(records), "has_more": more, "limit": limit, "offset": offset}

    def execution_stats(self, schedule_id: str, days: int = 30) -> dict[str, Any]:
        zone = load_timezone(self.get_schedule(schedule_id)["timezone"])
        today = local_date(self.scheduler.clock(), zone)
        return self.service.history.stats(schedule_id, today=today, days=days)


def cli_actor() -> str:
    """Who the CLI's changes are made by: ``cli:<login name>``."""
    import getpass  # here: it loads termios, which no other command needs

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor the password file
        user = "unknown"
    return clean_actor(f"cli:{user}")


@contextlib.contextmanager
def _schedules(backend: Any) -> Iterator[ScheduleBackend]:
    if isinstance(backend, DaemonClient):
        yield backend
        return
    direct = DirectSchedules(backend)
    try:
        yield direct
    finally:
        direct.close()


def _every_schedule(backend: ScheduleBackend) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = backend.list_schedules(limit=PAGE, offset=len(found))
        found.extend(page["schedules"])
        if not page["schedules"] or len(found) >= page["total"]:
            return found


def resolve_schedule(backend: ScheduleBackend, ref: str) -> dict[str, Any]:
    """The schedule ``ref`` names: its id, its exact name, or a unique start of its id (8+ characters).

    ScheduleNotFoundError (exit 1) if none fits; JobValidationError (exit 2) naming them
    if the start of an id fits several.
    """
    text = normalize_text(ref).strip()
    if not text:
        raise JobValidationError("schedule", "give a schedule id, the start of one (8+ characters) or a name")
    if _UUID.match(text):
        with contextlib.suppress(ScheduleNotFoundError):
            return backend.get_schedule(text.lower())
    named = backend.list_schedules(name=text, limit=1)["schedules"] if len(text) <= 200 else []
    if named:
        return named[0]
    if len(text) >= MIN_PREFIX and _ID_START.match(text):
        start = text.lower()
        matches = [s for s in _every_schedule(backend) if s["schedule_id"].startswith(start)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(f"{s['schedule_id']} ({printable(s['name'])})" for s in matches[:5])
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise JobValidationError(
                "schedule", f"{text!r} starts {len(matches)} schedule ids: {shown}{more}; give more of the id"
            )
    raise ScheduleNotFoundError(printable(text))


# -- parsing the options --------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` or a sum like ``1h30m``."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise JobValidationError(
            "interval_seconds (--every)", f"must be seconds or a duration like 15m, 2h, 1d, 1h30m (got {text!r})"
        )
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def _cleared(text: str | None, clearable: bool) -> bool:
    return clearable and text is not None and text.strip().lower() == "none"


def _integer(field: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise JobValidationError(field, f"must be an integer, got {text!r}") from None


def _instant(field: str, text: str, zone: tzinfo) -> str:
    try:
        return parse_instant(text, zone).isoformat()
    except ValueError as exc:
        raise JobValidationError(field, str(exc)) from None


def _zone(name: str) -> tzinfo:
    try:
        return load_timezone(name)
    except ValueError as exc:
        raise JobValidationError("timezone", str(exc)) from None


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise JobValidationError("command_payload (--payload)", f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JobValidationError("command_payload (--payload)", f"must be a JSON object, got {type(value).__name__}")
    return value


def _fields(args: argparse.Namespace, zone: tzinfo, *, update: bool) -> dict[str, Any]:
    """The schedule fields the options give (for an update, ``none`` clears an optional one)."""
    fields: dict[str, Any] = {}
    if args.cron is not None:
        fields.update(schedule_type="cron", cron_expression=args.cron)
    elif args.every is not None:
        fields.update(schedule_type="interval", interval_seconds=parse_duration(args.every))
    elif args.at is not None:
        fields.update(schedule_type="one_time", run_at=_instant("run_at (--at)", args.at, zone))
    elif args.now:
        fields.update(schedule_type="immediate")
    if update and args.rename is not None:
        fields["name"] = args.rename
    if args.description is not None:
        fields["description"] = None if _cleared(args.description, update) else args.description
    if args.timezone is not None:
        fields["timezone"] = None if _cleared(args.timezone, update) else args.timezone
    for option, field in (("start", "start_date"), ("end", "end_date")):
        text = getattr(args, option)
        if text is not None:
            fields[field] = None if _cleared(text, update) else _instant(f"{field} (--{option})", text, zone)
    if args.kind is not None:
        fields["target_command"] = args.kind
    if args.payload is not None:
        fields["command_payload"] = _payload(args.payload)
    elif args.message is not None:
        fields["command_payload"] = {"message": args.message}
        fields.setdefault("target_command", "log")  # --message is the log kind's payload
    if args.tag is not None:
        fields["tags"] = args.tag
    if args.coalesce is not None:
        fields["coalesce"] = args.coalesce
    if args.account is not None:
        fields["account_id"] = None if _cleared(args.account, update) else args.account
    for option, field, clearable in (
        ("priority", "priority", False),
        ("max_retries", "max_retries", True),
        ("retry_delay", "retry_delay_seconds", True),
        ("misfire_grace", "misfire_grace_time", True),
        ("max_instances", "max_instances", True),
        ("pause_after_failures", "pause_after_failures", True),
    ):
        text = getattr(args, option)
        if text is not None:
            fields[field] = None if _cleared(text, update and clearable) else _integer(field, text)
    return fields


def _checked(model: type[ScheduleSpec] | type[ScheduleUpdate], fields: dict[str, Any]) -> None:
    """The fields' rules, checked here so both modes refuse with the same line."""
    try:
        parsed = model.model_validate(fields)
    except PydanticValidationError as exc:
        raise schedule_error(exc) from None
    except ValueError as exc:  # a validator's own error (an unknown zone)
        raise JobValidationError("timezone", str(exc)) from None
    if isinstance(parsed, ScheduleSpec):
        check_definition(parsed)


# -- the commands ----------------------------------------------------------------------------


def _default_kind(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> str:
    if isinstance(backend, DirectSchedules):
        return backend.default_kind
    # the daemon fills no default in a schedule: the same extensions give the kind it would
    probe = Scheduler(settings.data_dir, timezone=settings.timezone_name, extensions=getattr(args, "extensions", ()))
    return probe.default_kind


def _cmd_add(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    zone = _zone(args.timezone) if args.timezone else settings.zone
    spec = {"name": args.name, **_fields(args, zone, update=False)}
    spec.setdefault("target_command", _default_kind(backend, args, settings))
    if args.paused:
        spec["paused"] = True
    _checked(ScheduleSpec, spec)
    schedule = backend.create_schedule(spec, cli_actor())
    schedule_id = schedule["schedule_id"]
    args.out.changed(f"the schedule was added: {schedule_id} (see `schedule show {schedule_id}`)")
    _answer(args, schedule, schedule["schedule_id"])
    return 0


def _cmd_list(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    limit = _integer("limit", args.limit)
    offset = _integer("offset", args.offset)
    if not 1 <= limit <= PAGE:
        raise JobValidationError("limit", f"must be from 1 to {PAGE}, got {limit}")
    if offset < 0:
        raise JobValidationError("offset", f"must be >= 0, got {offset}")
    page = backend.list_schedules(tag=args.tag, status=args.status, created_by=args.created_by,
                                  schedule_type=args.type, limit=limit, offset=offset)
    if args.json:
        args.out.line(_json(page))
        return 0
    rows = [
        [s["schedule_id"][:MIN_PREFIX], _shorten(s["name"], 30), s["schedule_type"], _when_text(s),
         _local(s.get("next_run_time"), s["timezone"]), s["status"], _local(s.get("last_fire_time"), s["timezone"])]
        for s in page["schedules"]
    ]
    headers = ["ID", "NAME", "TYPE", "WHEN", "NEXT RUN", "STATUS", "LAST FIRE"]
    footer = _plural(page["total"], "schedule")
    if page["count"] < page["total"]:
        footer = f"{page['count']} of {footer}, from {offset + 1}"
        if offset + page["count"] < page["total"]:
            footer += f" (next: --offset {offset + page['count']})"
    args.out.line(_table(headers, rows, footer))
    return 0


def _cmd_show(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    if args.json:
        args.out.line(_json(schedule))
        return 0
    zone = schedule["timezone"]
    for key, value in {"schedule_id": schedule["schedule_id"], **schedule}.items():
        if key in _INSTANTS and isinstance(value, str):
            value = f"{value}  ({_local(value, zone)})"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, bool):
            value = str(value).lower()
        args.out.line(printable(f"{key:>20}: {'' if value is None else value}"))
    return 0


def _cmd_update(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    zone_name = args.timezone if args.timezone and not _cleared(args.timezone, True) else schedule["timezone"]
    changes = _fields(args, _zone(zone_name), update=True)
    if not changes:
        raise JobValidationError("update", "nothing to change: give at least one option (see schedule update --help)")
    _checked(ScheduleUpdate, changes)
    updated = backend.update_schedule(schedule["schedule_id"], changes, cli_actor())
    args.out.changed(f"the schedule was updated: {updated['schedule_id']}")
    next_run = _local(updated.get("next_run_time"), updated["timezone"])
    _answer(args, updated, f"updated {_named(updated)}; next run {next_run}")
    return 0


def _cmd_pause(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    paused = backend.pause_schedule(schedule["schedule_id"], args.reason, cli_actor())
    args.out.changed(f"the schedule was paused: {paused['schedule_id']}")
    was = " (it was paused already)" if schedule["paused"] else ""
    _answer(args, paused, f"paused {_named(paused)}{was}")
    return 0


def _cmd_resume(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    resumed = backend.resume_schedule(schedule["schedule_id"], args.reason, cli_actor())
    args.out.changed(f"the schedule was resumed: {resumed['schedule_id']}")
    was = " (it was not paused)" if not schedule["paused"] else ""
    _answer(args, resumed,
            f"resumed {_named(resumed)}{was}; next run {_local(resumed.get('next_run_time'), resumed['timezone'])}")
    return 0


def _cmd_trigger(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    answer = backend.trigger_schedule(schedule["schedule_id"], cli_actor())
    args.out.changed(f"the schedule was triggered: execution {answer['execution_id']}")
    _answer(args, answer, answer["execution_id"])
    return 0


def _cmd_remove(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    answer = backend.delete_schedule(schedule["schedule_id"], cli_actor())
    args.out.changed(f"the schedule was removed: {answer['deleted']}")
    _answer(args, answer, f"removed {_named(answer['schedule'])}")
    return 0


def _cmd_backfill(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    schedule = resolve_schedule(backend, args.schedule)
    zone = _zone(schedule["timezone"])
    start = datetime.fromisoformat(_instant("start (--from)", args.start, zone))
    end = datetime.fromisoformat(_instant("end (--to)", args.end, zone))
    answer = backend.backfill_schedule(schedule["schedule_id"], start, end, cli_actor())
    added, existing = len(answer["added"]), len(answer["existing"])
    args.out.changed(f"the schedule was backfilled: {added} runs added")
    more = f"; more fires than {answer['fires']} in the window: backfill the rest after" if answer["truncated"] else ""
    _answer(args, answer, f"backfilled {_named(schedule)}: {_plural(answer['fires'], 'fire')} in the window, "
                          f"{added} added, {existing} had a run already{more}")
    return 0


def _cmd_executions(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    limit = _integer("limit", args.limit)
    offset = _integer("offset", args.offset)
    if not 1 <= limit <= PAGE:
        raise JobValidationError("limit", f"must be from 1 to {PAGE}, got {limit}")
    if offset < 0:
        raise JobValidationError("offset", f"must be >= 0, got {offset}")
    schedule_id = resolve_schedule(backend, args.schedule)["schedule_id"] if args.schedule is not None else None
    page = backend.list_executions(schedule_id=schedule_id, status=args.status, limit=limit, offset=offset)
    if args.json:
        args.out.line(_json(page))
        return 0
    zone = settings.zone
    rows = [
        [
            r["execution_id"],
            _shorten(r.get("schedule_name") or (r.get("schedule_id") or "")[:MIN_PREFIX], 24),
            _local(r.get("fire_time"), zone),
            r.get("status", ""),
            _shorten(r.get("triggered_by") or "", 24),
            _seconds(r.get("duration_seconds")),
            _shorten(r.get("error") or "", 40),
        ]
        for r in page["executions"]
    ]
    headers = ["EXECUTION", "SCHEDULE", f"FIRE ({settings.timezone_name})", "STATUS", "BY", "DURATION", "ERROR"]
    footer = _plural(page["count"], "execution") + (
        f", newest first (more: --offset {offset + page['count']})" if page["has_more"] else ", newest first"
    )
    args.out.line(_table(headers, rows, footer))
    return 0


def _cmd_stats(backend: ScheduleBackend, args: argparse.Namespace, settings: Settings) -> int:
    days = _integer("days", args.days)
    if not 1 <= days <= 366:
        raise JobValidationError("days", f"must be from 1 to 366, got {days}")
    if args.schedule is not None:
        schedule = resolve_schedule(backend, args.schedule)
        stats = backend.execution_stats(schedule["schedule_id"], days)
        if args.json:
            args.out.line(_json(stats))
            return 0
        counts = ", ".join(f"{k} {v}" for k, v in stats["counts"].items()) or "none"
        for key, value in (
            ("schedule", _named(schedule)),
            ("window", f"the last {_plural(days, 'day')} (since {stats['since']}, {schedule['timezone']})"),
            ("runs", stats["total"]),
            ("by status", counts),
            ("success rate", _rate(stats["success_rate"])),
            ("duration p50", _seconds(stats["duration_p50_seconds"])),
            ("duration p95", _seconds(stats["duration_p95_seconds"])),
        ):
            args.out.line(printable(f"{key:>12}: {value}"))
        return 0
    every = [(s, backend.execution_stats(s["schedule_id"], days)) for s in _every_schedule(backend)]
    if args.json:
        args.out.line(_json({"window_days": days, "schedules": [{**st, "name": s["name"]} for s, st in every]}))
        return 0
    rows = [
        [s["schedule_id"][:MIN_PREFIX], _shorten(s["name"], 30), str(st["total"]), str(st["succeeded"]),
         str(st["failed"]), str(st["misfired"]), _rate(st["success_rate"]), _seconds(st["duration_p50_seconds"]),
         _seconds(st["duration_p95_seconds"])]
        for s, st in every
    ]
    headers = ["ID", "NAME", "RUNS", "OK", "FAILED", "MISFIRED", "SUCCESS", "P50", "P95"]
    args.out.line(_table(headers, rows, f"{_plural(len(rows), 'schedule')}, the last {_plural(days, 'day')}"))
    return 0


def _on_schedules(command: Callable[[ScheduleBackend, argparse.Namespace, Settings], int]) -> Callable[..., int]:
    """A command run by ``cli.main`` with its backend (the Scheduler or the client)."""

    def run(backend: Any, args: argparse.Namespace, settings: Settings) -> int:
        with _schedules(backend) as schedules:
            return command(schedules, args, settings)

    return run


# -- showing ---------------------------------------------------------------------------------


def _answer(args: argparse.Namespace, answer: dict[str, Any], line: str) -> None:
    out: Output = args.out
    out.line(_json(answer) if args.json else printable(line))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _named(schedule: dict[str, Any]) -> str:
    return f"{schedule['schedule_id']} ({_shorten(schedule['name'], 60)})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _shorten(text: str, width: int) -> str:
    flat = printable(" ".join(str(text).split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _local(text: str | None, zone: tzinfo | str) -> str:
    """An ISO instant as the wall-clock time of ``zone`` with its abbreviation; ``-`` for none."""
    if not text:
        return "-"
    where = load_timezone(zone) if isinstance(zone, str) else zone
    local = datetime.fromisoformat(text).astimezone(where)
    shown = f"{local:%Y-%m-%d %H:%M}" + (f":{local:%S}" if local.second else "")
    return f"{shown} {local:%Z}"


def _duration_text(seconds: int) -> str:
    parts = []
    for unit, size in _UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _when_text(schedule: dict[str, Any]) -> str:
    kind = schedule["schedule_type"]
    if kind == "cron":
        return printable(schedule.get("cron_expression") or "")
    if kind == "interval":
        return f"every {_duration_text(int(schedule.get('interval_seconds') or 0))}"
    if kind == "one_time":
        return f"at {_local(schedule.get('run_at'), schedule['timezone'])}"
    return "now"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(headers: list[str], rows: list[list[str]], footer: str) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [headers, *rows]]
    lines.append(footer)
    return "\n".join(lines)


# -- the parsers ------------------------------------------------------------------------------


def _definition_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    clear = " (none clears it)" if update else ""
    timing = parser.add_mutually_exclusive_group(required=not update)
    timing.add_argument("--cron", metavar="EXPR", help='a 5-field cron expression, e.g. "0 8 * * *"')
    timing.add_argument("--every", metavar="DURATION", help="an interval: seconds, or 15m, 2h, 1d, 1h30m")
    timing.add_argument("--at", metavar="ISO", help="once, at this time (without an offset: the schedule's zone)")
    timing.add_argument("--now", action="store_true", help="once, now")
    if update:
        parser.add_argument("--name", dest="rename", metavar="NAME", help="a new name")
    parser.add_argument("--description", help="what the schedule is for" + clear)
    parser.add_argument("--timezone", metavar="ZONE",
                        help="IANA zone of the cron fields and of times without an offset "
                             "(default SCHEDULER_TIMEZONE)" + clear)
    parser.add_argument("--kind", metavar="KIND",
                        help="the job kind each fire runs (target_command; default: the scheduler's default kind, "
                             "log with --message)")
    payload = parser.add_mutually_exclusive_group()
    payload.add_argument("--payload", metavar="JSON", help="the kind's payload, a JSON object")
    payload.add_argument("--message", metavar="TEXT", help='for the log kind: --payload \'{"message": TEXT}\'')
    parser.add_argument("--tag", action="append", metavar="TAG",
                        help="a tag (repeat for more)" + ("; replaces the tags" if update else ""))
    parser.add_argument("--priority", metavar="1..10", help="priority of the jobs it makes (default 5)")
    parser.add_argument("--max-retries", metavar="N",
                        help="retries of a failed run (default DEFAULT_MAX_RETRIES, 3)" + clear)
    parser.add_argument("--retry-delay", metavar="SECONDS",
                        help="first wait before a retry (default DEFAULT_RETRY_DELAY, 300)" + clear)
    parser.add_argument("--misfire-grace", metavar="SECONDS",
                        help="how late a fire may run and not be a misfire "
                             "(default SCHEDULER_MISFIRE_GRACE_TIME, 300)" + clear)
    parser.add_argument("--coalesce", choices=[c.value for c in Coalesce],
                        help="which of several due fires run after downtime (default latest)")
    parser.add_argument("--max-instances", metavar="N",
                        help="unfinished runs allowed at once (default SCHEDULER_MAX_INSTANCES, 3)" + clear)
    parser.add_argument("--pause-after-failures", metavar="N", help="pause after N failed runs in a row" + clear)
    parser.add_argument("--start", metavar="ISO", help="no fire before this time" + clear)
    parser.add_argument("--end", metavar="ISO", help="no fire after this time" + clear)
    parser.add_argument("--account", metavar="ID", help="the account of the jobs it makes" + clear)


def add_schedule_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``schedule``, ``executions`` and ``stats`` to the CLI's sub-commands.

    Each action sets ``with_backend`` (run by ``cli.main`` on the files or through the
    daemon) and ``writes`` (only ``schedule add`` may create the data dir).
    """
    def json_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the API's JSON answer")

    def action(name: str, command: Callable[..., int], help: str, *, writes: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=help)
        parser.set_defaults(with_backend=_on_schedules(command), writes=writes)
        return parser

    schedule = sub.add_parser("schedule", parents=[common], help="recurring schedules (add, list, show, ...)")
    actions = schedule.add_subparsers(dest="action", metavar="ACTION", parser_class=type(schedule), required=True)

    add = action("add", _cmd_add, "add a schedule", writes=True)
    add.add_argument("name", metavar="NAME", help="its name (unique)")
    _definition_options(add, update=False)
    add.add_argument("--paused", action="store_true", help="add it paused")
    json_option(add)

    lst = action("list", _cmd_list, "list schedules by name")
    lst.add_argument("--tag", help="only schedules with this tag")
    lst.add_argument("--status", choices=[s.value for s in ScheduleStatus], help="only this status")
    lst.add_argument("--created-by", metavar="WHO", help="only schedules this actor made (e.g. cli:alice, api)")
    lst.add_argument("--type", choices=["cron", "interval", "one_time", "immediate"], help="only this type")
    lst.add_argument("--limit", default="50", help=f"at most this many (1..{PAGE}, default 50)")
    lst.add_argument("--offset", default="0", help="skip this many first")
    json_option(lst)

    ref_help = "its id, the start of its id (8+ characters) or its name"
    show = action("show", _cmd_show, "show one schedule")
    show.add_argument("schedule", metavar="ID", help=ref_help)
    json_option(show)

    update = action("update", _cmd_update, "change a schedule (the options given replace its fields)")
    update.add_argument("schedule", metavar="ID", help=ref_help)
    _definition_options(update, update=True)
    json_option(update)

    for name, command, what in (("pause", _cmd_pause, "pause a schedule (it fires no more until resumed)"),
                                ("resume", _cmd_resume, "resume a schedule (from now: missed fires do not run)")):
        parser = action(name, command, what)
        parser.add_argument("schedule", metavar="ID", help=ref_help)
        parser.add_argument("--reason", help="why (kept in the audit trail)")
        json_option(parser)

    trigger = action("trigger", _cmd_trigger, "run a schedule now (paused or not); prints the execution id")
    trigger.add_argument("schedule", metavar="ID", help=ref_help)
    json_option(trigger)

    remove = action("remove", _cmd_remove, "remove a schedule (its waiting runs go, running ones finish)")
    remove.add_argument("schedule", metavar="ID", help=ref_help)
    json_option(remove)

    backfill = action("backfill", _cmd_backfill, "add the runs of a past window that have none (cron, interval)")
    backfill.add_argument("schedule", metavar="ID", help=ref_help)
    backfill.add_argument("--from", dest="start", required=True, metavar="ISO", help="the window's start")
    backfill.add_argument("--to", dest="end", required=True, metavar="ISO", help="the window's end (not in the future)")
    json_option(backfill)

    executions = sub.add_parser("executions", parents=[common], help="runs of schedules, newest fire first")
    executions.set_defaults(with_backend=_on_schedules(_cmd_executions), writes=False)
    executions.add_argument("--schedule", metavar="ID", help="only this schedule's (" + ref_help + ")")
    executions.add_argument("--status", choices=EXECUTION_STATUSES, help="only this status")
    executions.add_argument("--limit", default="50", help=f"at most this many (1..{PAGE}, default 50)")
    executions.add_argument("--offset", default="0", help="skip this many first")
    json_option(executions)

    stats = sub.add_parser("stats", parents=[common], help="runs, success rate and p50/p95 duration of schedules")
    stats.set_defaults(with_backend=_on_schedules(_cmd_stats), writes=False)
    stats.add_argument("schedule", metavar="SCHEDULE_ID", nargs="?", help="one schedule (" + ref_help + "); "
                       "default: one line per schedule")
    stats.add_argument("--days", default="30", help="the window, in days (1..366, default 30)")
    json_option(stats)
