"""``quota [--json]``: today's quota, the check-quota stage's JSON (``--json``) or a line."""

from __future__ import annotations

import argparse
import json
import sys

from services.pipeline.settings import load_settings
from services.pipeline.stages import quota as check_quota
from services.scheduler.settings import Settings, SettingsError

__all__ = ["quota_command"]


def quota_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print today's quota (Vietnam day); exit 2 on broken settings."""
    try:
        pipeline = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    # the scheduler's view of the jobs (its files under the lock, or the daemon's API), as
    # the machine's CheckQuota sees them: never day files guessed from dates
    result = check_quota.handler({}, check_quota.view_of(settings, pipeline))
    if args.json:
        args.out.line(json.dumps(result))
    else:
        state = "reached" if result["quota_reached"] else f"{result['remaining']} left"
        args.out.line(f"{check_quota.vietnam_today()}: {result['used']} of {result['quota']} videos ({state})")
    return 0
