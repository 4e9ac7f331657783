"""``daily [--at HH:MM] [--account ID] [--json]``: create or update the daily run's schedule.

The day's run (kind ``pipeline.daily``) is a cron schedule, ``daily-<account>``, at HH:MM
Vietnam time (default 08:00), as ``config/schedules.example`` holds it. ``daily`` is
idempotent: the first call creates the schedule, a second with the same time changes
nothing, one with another ``--at`` updates it. It works on the files when the daemon is
not running and through the daemon's API when it is, like every scheduler command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import time as dt_time
from typing import Any

from services.pipeline.extension import PipelineExtension
from services.pipeline.jobs.daily_job import daily_schedule_spec
from services.scheduler.actor import acting_as
from services.scheduler.errors import SchedulerError
from services.scheduler.settings import Settings

__all__ = ["daily_command", "upsert_schedule"]


def daily_command(args: argparse.Namespace, settings: Settings) -> int:
    """Create or update the daily schedule; exit 2 on a bad ``--at`` or account, 1 on other errors."""
    try:
        at = dt_time.fromisoformat(args.at)
    except ValueError:
        sys.stderr.write(f"error: --at: must be HH:MM (Vietnam time), got {args.at!r}\n")
        return 2
    spec = daily_schedule_spec(args.account, at.replace(second=0, microsecond=0))
    from services.scheduler.cli import with_backend

    def run(backend: Any) -> int:
        schedule, outcome = upsert_schedule(backend, spec, actor="cli:daily")
        if args.json:
            sys.stdout.write(json.dumps({"outcome": outcome, "schedule": schedule}, ensure_ascii=False, indent=2) + "\n")
        else:
            sys.stdout.write(
                f"daily schedule {outcome}: {schedule['name']} ({schedule['schedule_id']}) at "
                f"{args.at} {spec['timezone']}, next run {schedule.get('next_run_time')}\n"
            )
        return 0

    try:
        return with_backend(settings, run, [PipelineExtension()])
    except SchedulerError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return exc.exit_code


def upsert_schedule(backend: Any, spec: dict[str, Any], *, actor: str) -> tuple[dict[str, Any], str]:
    """Create the schedule named ``spec["name"]`` or update it to ``spec``, on ``backend``
    (a loaded Scheduler, or a DaemonClient); return its answer form and the outcome."""
    service = getattr(backend, "schedules", None)
    if service is not None:  # the files, under the lock

        async def direct() -> tuple[dict[str, Any], str]:
            with acting_as(actor):
                schedule, outcome = await service.upsert(spec, created_by=actor)
            await backend.audit.flush()
            await service.history.flush()
            return service.describe(schedule), outcome

        service.load()
        try:
            return asyncio.run(direct())
        finally:
            service.history.close()
            backend.audit.close()
    found = backend.list_schedules(name=spec["name"], limit=1)  # the daemon's API
    held = (found.get("schedules") or [None])[0]
    if held is None:
        return backend.create_schedule(spec, actor), "created"
    changes = {key: value for key, value in spec.items() if key != "paused" and held.get(key) != value}
    if not changes:
        return held, "unchanged"
    return backend.update_schedule(held["schedule_id"], changes, actor), "updated"
