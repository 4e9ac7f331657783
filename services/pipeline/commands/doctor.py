"""``doctor [--offline]``: which backend each stage uses and why, and the checks (ffmpeg,
font, espeak-ng, data dir, secret files, settings a backend needs, and a refresh of each
YouTube token unless ``--offline``); exit 1 on a broken setting or a failed check.

The report itself is ``services.pipeline.doctor``; this is the command around it.
"""

from __future__ import annotations

import argparse

from services.pipeline.doctor import doctor_report
from services.scheduler.settings import Settings

__all__ = ["doctor_command"]


def doctor_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the report for the data dir; its exit code (0, or 1 if broken)."""
    return doctor_report(settings.data_dir, args.out.line, online=not args.offline)
