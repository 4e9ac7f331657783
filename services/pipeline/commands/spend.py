"""``spend [--month YYYY-MM] [--json]``: the month's estimated Spot render spend.

Read from ``DATA_DIR/spot_ledger.json`` (``tasks/spot_ledger.py``): each Spot worker's
type, seconds and estimated cost, recorded when its wait ended. One line per run and a
total, with SPOT_MONTHLY_BUDGET_USD beside it when set. It writes nothing.

The scheduler's own ``stats`` is about schedules' runs and knows nothing of the pipeline
(the scheduler never imports it): the extension wraps it to end with the month's total
once Spot workers have run, and the details are here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from services.pipeline.settings import load_settings
from services.pipeline.tasks.spot_ledger import month_spend, this_month
from services.scheduler.clock import utc_now
from services.scheduler.settings import Settings, SettingsError

__all__ = ["spend_command"]


def spend_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the month's Spot spend; exit 2 on a bad month or broken settings."""
    month = args.month or this_month(utc_now())
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        sys.stderr.write(f"error: --month must be YYYY-MM, got {month!r}\n")
        return 2
    try:
        pipeline = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    total, runs = month_spend(Path(settings.data_dir), month)
    budget = pipeline.spot_monthly_budget_usd
    if args.json:
        args.out.line(json.dumps({"month": month, "spend_usd": total, "budget_usd": budget, "runs": runs}))
        return 0
    for run in runs:
        args.out.line(
            f"{str(run.get('ended_at', ''))[:16]}  {run.get('job_id') or '?':<12} {run.get('instance_type', '?'):<12} "
            f"{float(run.get('seconds') or 0) / 60:6.1f} min  ${float(run.get('cost_usd') or 0):.4f}"
        )
    of = f" of the ${budget:g} budget" if budget is not None else ""
    args.out.line(f"{month}: ${total:.4f} on {len(runs)} Spot run(s){of}")
    return 0
