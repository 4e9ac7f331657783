"""The pipeline as a scheduler extension: the ``pipeline.video`` and ``pipeline.daily``
kinds, and the CLI commands it adds to ``run_scheduler.py``.

Each command's body is a module of ``services.pipeline.commands``, imported only when
that command runs (``demo`` alone pulls in PyAV, Pillow and fontTools: a tenth of a
second the daemon's start does not need); here are its parser and its wiring:

- ``quota [--json]``: today's quota (``commands/quota.py``);
- ``daily [--at HH:MM]``: add the day's run (``commands/daily.py``);
- ``doctor [--offline]``: each stage's backend and the checks (``commands/doctor.py``);
- ``youtube-auth``: authorise a YouTube channel once (``commands/youtube_auth.py``);
- ``demo [--dir DIR] [--panels N] [--format landscape|shorts]``: one video end to end on the embedded defaults
  (``commands/demo.py``);
- ``check FILE.mp4 [--json] [--subtitles TEXT]``: the gate before upload (``commands/check.py``);
- ``spend [--month YYYY-MM] [--json]``: the month's Spot spend (``commands/spend.py``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.pipeline.jobs.daily_job import DailyJobs
from services.pipeline.jobs.video_job import VideoJobs
from services.pipeline.metrics import install_metrics
from services.pipeline.settings import PipelineSettings, load_settings
from services.pipeline.stages import backend_names
from services.pipeline.status_sections import PipelineStatus
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import SettingsError

__all__ = ["PipelineExtension"]

logger = logging.getLogger(__name__)


def _with_spend(command: Callable[..., int]) -> Callable[..., int]:
    """The scheduler's ``stats``, then (as text, when Spot workers ran) a line with this
    month's estimated render spend; the scheduler itself knows nothing of the pipeline."""

    def run(backend: Any, args: argparse.Namespace, settings: Any) -> int:
        code = command(backend, args, settings)
        if code == 0 and not getattr(args, "json", False):
            from services.pipeline.tasks.spot_ledger import LEDGER_FILE, month_spend, this_month
            from services.scheduler.clock import utc_now

            if (Path(settings.data_dir) / LEDGER_FILE).exists():
                month = this_month(utc_now())
                total, runs = month_spend(Path(settings.data_dir), month)
                args.out.line(f"render spend {month}: ${total:.4f} on {len(runs)} Spot run(s) (details: spend)")
        return code

    return run


def _command(name: str) -> Callable[[argparse.Namespace, Any], int]:
    """``services.pipeline.commands.<name>.<name>_command``, imported when it is called."""

    def run(args: argparse.Namespace, settings: Any) -> int:
        module = importlib.import_module(f"services.pipeline.commands.{name}")
        return getattr(module, f"{name}_command")(args, settings)

    run.__name__ = f"{name}_command"
    return run


class PipelineExtension:
    """Installs the pipeline into a Scheduler and its CLI.

    :param settings: reads the pipeline settings (default ``load_settings``: environment
        and settings file), at install for the log line and at the start of each run;
        ``demo`` passes ``PipelineSettings.embedded``.
    """

    def __init__(self, settings: Callable[[], PipelineSettings] = load_settings) -> None:
        self.load_settings = settings

    def install(self, scheduler: Scheduler) -> None:
        """Register ``pipeline.video`` (add-job's default kind from now on) and ``pipeline.daily``,
        and add the quota and state-duration metrics to the scheduler's (``pipeline/metrics.py``)."""
        VideoJobs(scheduler, settings=self.load_settings).install()
        DailyJobs(scheduler, settings=self.load_settings).install()
        PipelineStatus(scheduler, settings=self.load_settings).install()  # the status page's quota, published
        install_metrics(scheduler, self.load_settings)
        try:
            logger.info("pipeline backends", extra={"backends": backend_names(self.load_settings())})
        except SettingsError as exc:  # the stages will fail with it too; `doctor` explains
            logger.error("pipeline settings are broken: %s", exc)

    def add_commands(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        """Add ``quota``, ``daily``, ``demo``, ``doctor`` and ``youtube-auth``."""
        quota_cmd = subparsers.add_parser("quota", parents=[common], help="today's video quota (Vietnam day)")
        quota_cmd.add_argument("--json", action="store_true", help="print the check-quota JSON")
        quota_cmd.set_defaults(run=_command("quota"))
        daily = subparsers.add_parser("daily", parents=[common], help="add the daily run (the quota loop)")
        daily.add_argument("--at", default="08:00", help="Vietnam time HH:MM of the run (default 08:00)")
        daily.add_argument("--account", default="default", help="account id (default 'default')")
        daily.add_argument("--json", action="store_true", help="print the job as JSON")
        daily.set_defaults(run=_command("daily"))
        demo = subparsers.add_parser("demo", help="make one video end to end on the embedded defaults")
        demo.add_argument(
            "--dir", type=Path, default=Path("data/demo"), help="its own data dir (emptied first)"
        )
        demo.add_argument("--panels", type=int, default=12, help="panels in the sample chapter (default 12)")
        demo.add_argument("--format", choices=("landscape", "shorts"), default="landscape",
                          help="16:9 for the channel (default) or 9:16 for Shorts, from the same plan")
        demo.set_defaults(run=_command("demo"))
        doctor = subparsers.add_parser(
            "doctor", parents=[common], help="each stage's backend and offline checks (exit 1 if broken)"
        )
        doctor.add_argument("--offline", action="store_true", help="skip the YouTube token refresh")
        doctor.set_defaults(run=_command("doctor"))
        auth = subparsers.add_parser(
            "youtube-auth", parents=[common], help="authorise a YouTube channel once (writes the token file)"
        )
        auth.add_argument("--account", default="default", help="whose token (its [accounts] settings)")
        auth.add_argument(
            "--client-secrets", type=Path, help="OAuth client JSON (YOUTUBE_CLIENT_SECRETS_FILE)"
        )
        auth.add_argument("--token-file", type=Path, help="where to write the token (YOUTUBE_TOKEN_FILE)")
        auth.add_argument("--port", type=int, default=8080, help="localhost port for the redirect (8080)")
        auth.set_defaults(run=_command("youtube_auth"))
        check = subparsers.add_parser(
            "check", help="the gate before upload, on any video file (exit 1 if a figure fails)"
        )
        check.add_argument("file", type=Path, help="the video (MP4) to measure")
        check.add_argument("--json", action="store_true", help="print the figures and failures as JSON")
        check.add_argument("--subtitles", type=Path, help="a text file whose characters the font must have")
        check.set_defaults(run=_command("check"))
        spend = subparsers.add_parser("spend", parents=[common], help="the month's estimated Spot render spend")
        spend.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
        spend.add_argument("--json", action="store_true", help="print the runs and the total as JSON")
        spend.set_defaults(run=_command("spend"))
        stats = subparsers.choices.get("stats")
        if stats is not None and stats.get_default("with_backend") is not None:
            stats.set_defaults(with_backend=_with_spend(stats.get_default("with_backend")))

