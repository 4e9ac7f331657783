"""``daily [--at HH:MM] [--account ID] [--json]``: add the day's run (``pipeline.daily``)
at the next HH:MM Vietnam time (default 08:00); each run adds the next day's when it ends.

The run's id names its account and Vietnam day, so ``daily`` twice adds one run; it is
added through the scheduler CLI's own ``add-job``, with its backend and messages.
"""

from __future__ import annotations

import argparse
import sys
from datetime import time as dt_time

from services.pipeline.jobs.daily_job import DAILY_KIND, daily_job_id, next_daily_time
from services.scheduler.clock import utc_now
from services.scheduler.settings import Settings

__all__ = ["daily_command"]


def daily_command(args: argparse.Namespace, settings: Settings) -> int:
    """Add the next daily run; exit 2 on a bad ``--at``, else ``add-job``'s exit code."""
    try:
        at = dt_time.fromisoformat(args.at)
    except ValueError:
        sys.stderr.write(f"error: --at: must be HH:MM (Vietnam time), got {args.at!r}\n")
        return 2
    when = next_daily_time(at.replace(second=0, microsecond=0), utc_now())
    # one run per account and Vietnam day: the id says which, so `daily` twice adds one run
    # (the second answers with the first; another --at for that day is refused)
    command = [
        "add-job",
        "--job-id",
        daily_job_id(args.account, when),
        "--kind",
        DAILY_KIND,
        "--account",
        args.account,
        "--content",
        "daily",
        "--at",
        when.isoformat(),
        "--data-dir",
        str(settings.data_dir),
    ]
    if args.json:
        command.append("--json")
    # imported here: the extension imports this module to wire the command
    from services.pipeline.extension import PipelineExtension
    from services.scheduler.cli import main as scheduler_main  # the same backend and messages

    return scheduler_main(command, extensions=[PipelineExtension()])
