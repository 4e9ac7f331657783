"""The pipeline as a scheduler extension: the ``pipeline.video`` kind and CLI commands.

Commands it adds to ``run_scheduler.py``:

- ``daily [--at HH:MM]``: add the day's run (``pipeline.daily``) at the next HH:MM Vietnam
  time (default 08:00); each run adds the next day's when it ends;
- ``quota [--json]``: today's quota, the check-quota stage's JSON (``--json``) or a line;
- ``doctor [--offline]``: which backend each stage uses and why, and the checks (ffmpeg,
  font, espeak-ng, data dir, secret files, settings a backend needs, and a refresh of each
  YouTube token unless ``--offline``); exit 1 on a broken setting or a failed check;
- ``youtube-auth [--account ID] [--client-secrets FILE] [--token-file FILE] [--port N]``:
  authorise a YouTube channel once (OAuth installed-app flow; it prints the URL to open,
  and listens on localhost:N for Google's redirect) and write the refresh token file
  (0600) the uploads use;
- ``demo [--dir DIR] [--panels N]``: one video end to end on the embedded defaults in its
  own data dir (default ``data/demo``): draws a sample chapter, adds a ``pipeline.video``
  job, runs it, shows each state as it goes, and prints the MP4's path and a one-line
  summary. It empties DIR first only if an earlier demo made it (its marker file
  DEMO_MARKER, and only the demo's jobs); a locked folder, or one holding anything else,
  is refused with exit 2 and left as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import av

from services.pipeline.doctor import doctor_report
from services.pipeline.errors import VideoPipelineError
from services.pipeline.jobs.daily_job import DAILY_KIND, DailyJobs, daily_job_id, next_daily_time
from services.pipeline.jobs.video_job import VideoJobs
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.settings import PipelineSettings, load_settings
from services.pipeline.stages import backend_names, quota
from services.scheduler.clock import utc_now
from services.scheduler.lock import LOCK_FILE, DataDirLock, read_holder
from services.scheduler.models import JobStatus
from services.scheduler.output import Output, OutputFailed
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import Settings, SettingsError

__all__ = ["PipelineExtension"]

logger = logging.getLogger(__name__)


class PipelineExtension:
    """Installs the pipeline into a Scheduler and its CLI.

    :param settings: reads the pipeline settings (default ``load_settings``: environment
        and settings file), at install for the log line and at the start of each run;
        ``demo`` passes ``PipelineSettings.embedded``.
    """

    def __init__(self, settings: Callable[[], PipelineSettings] = load_settings) -> None:
        self.load_settings = settings

    def install(self, scheduler: Scheduler) -> None:
        """Register ``pipeline.video`` (add-job's default kind from now on)."""
        VideoJobs(scheduler, settings=self.load_settings).install()
        DailyJobs(scheduler, settings=self.load_settings).install()
        try:
            logger.info("pipeline backends", extra={"backends": backend_names(self.load_settings())})
        except SettingsError as exc:  # the stages will fail with it too; `doctor` explains
            logger.error("pipeline settings are broken: %s", exc)

    def add_commands(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        """Add ``quota``, ``daily``, ``demo`` and ``doctor``."""
        quota_cmd = subparsers.add_parser("quota", parents=[common], help="today's video quota (Vietnam day)")
        quota_cmd.add_argument("--json", action="store_true", help="print the check-quota JSON")
        quota_cmd.set_defaults(run=_quota)
        daily = subparsers.add_parser("daily", parents=[common], help="add the daily run (the quota loop)")
        daily.add_argument("--at", default="08:00", help="Vietnam time HH:MM of the run (default 08:00)")
        daily.add_argument("--account", default="default", help="account id (default 'default')")
        daily.add_argument("--json", action="store_true", help="print the job as JSON")
        daily.set_defaults(run=_daily)
        demo = subparsers.add_parser("demo", help="make one video end to end on the embedded defaults")
        demo.add_argument(
            "--dir", type=Path, default=Path("data/demo"), help="its own data dir (emptied first)"
        )
        demo.add_argument("--panels", type=int, default=12, help="panels in the sample chapter (default 12)")
        demo.set_defaults(run=_demo)
        doctor = subparsers.add_parser(
            "doctor", parents=[common], help="each stage's backend and offline checks (exit 1 if broken)"
        )
        doctor.add_argument("--offline", action="store_true", help="skip the YouTube token refresh")
        doctor.set_defaults(run=_doctor)
        auth = subparsers.add_parser(
            "youtube-auth", parents=[common], help="authorise a YouTube channel once (writes the token file)"
        )
        auth.add_argument("--account", default="default", help="whose token (its [accounts] settings)")
        auth.add_argument(
            "--client-secrets", type=Path, help="OAuth client JSON (YOUTUBE_CLIENT_SECRETS_FILE)"
        )
        auth.add_argument("--token-file", type=Path, help="where to write the token (YOUTUBE_TOKEN_FILE)")
        auth.add_argument("--port", type=int, default=8080, help="localhost port for the redirect (8080)")
        auth.set_defaults(run=_youtube_auth)


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    return doctor_report(
        settings.data_dir, args.out.line, online=not args.offline
    )


def _youtube_auth(args: argparse.Namespace, settings: Settings) -> int:
    try:
        view = load_settings().for_account(args.account)
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    secrets = args.client_secrets or view.youtube_client_secrets_file
    token = args.token_file or view.youtube_token_file
    if secrets is None or not Path(secrets).is_file():
        sys.stderr.write(
            "error: --client-secrets: name the OAuth client JSON (Desktop app) downloaded from Google "
            f"Cloud Console{f' ({secrets} does not exist)' if secrets else ''}\n"
        )
        return 2
    if token is None:
        sys.stderr.write("error: --token-file: name where to write the token (or set YOUTUBE_TOKEN_FILE)\n")
        return 2
    if not 1 <= args.port <= 65535:
        sys.stderr.write("error: --port must be 1-65535\n")
        return 2
    from services.pipeline.providers.upload import youtube  # the Google client loads only for this command

    try:
        written = youtube.authorize(Path(secrets), Path(token), port=args.port, write=args.out.line)
    except ValueError as exc:  # google-auth-oauthlib's word for a file that is not a client
        sys.stderr.write(f"error: --client-secrets: {secrets} is not an OAuth client file: {exc}\n")
        return 2
    except youtube.YouTubeAuthError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    args.out.changed(f"the token was written to {written}")
    args.out.line(f"token written to {written} (mode 600); `doctor` refreshes it to check")
    return 0


def _daily(args: argparse.Namespace, settings: Settings) -> int:
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
    from services.scheduler.cli import main as scheduler_main  # the same backend and messages

    return scheduler_main(command, extensions=[PipelineExtension()])


def _quota(args: argparse.Namespace, settings: Settings) -> int:
    try:
        pipeline = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    # the scheduler's view of the jobs (its files under the lock, or the daemon's API), as
    # the machine's CheckQuota sees them: never day files guessed from dates
    result = quota.handler({}, quota.view_of(settings, pipeline))
    if args.json:
        args.out.line(json.dumps(result))
    else:
        state = "reached" if result["quota_reached"] else f"{result['remaining']} left"
        args.out.line(f"{quota.vietnam_today()}: {result['used']} of {result['quota']} videos ({state})")
    return 0


class _Progress(logging.Handler):
    """Shows the machine's states as they start and finish, one line each."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.started = 0.0
        self.failed: OutputFailed | None = None  # raised after the run (a handler may not raise)

    def emit(self, record: logging.LogRecord) -> None:
        state = getattr(record, "stage", "")
        message = record.getMessage()
        try:
            if message == "state started":
                self.started = time.monotonic()
                self.out.write(f"  {state:<17}")
                self.out.flush()
            elif message == "state finished":
                self.out.write(f"done  {time.monotonic() - self.started:5.1f} s\n")
            elif message.startswith("state failed"):
                self.out.write(f"failed: {getattr(record, 'error', '')} {getattr(record, 'cause', '')}\n")
        except OutputFailed as exc:
            self.failed = self.failed or exc


DEMO_MARKER = ".video-scheduler-demo"
"""The file the demo writes in the folder it uses: only a folder holding it is emptied."""

_DEMO_ACCOUNT = "demo"


class _DemoDirRefused(VideoPipelineError):
    """The folder given to ``demo --dir`` is not one the demo may empty."""


def _take_demo_dir(folder: Path) -> DataDirLock:
    """Lock ``folder`` for the demo and empty it; return the held lock.

    The demo empties only a folder it made itself: one holding its marker and no job of
    another account. A new or empty folder is used as it is; a folder that is locked (a
    daemon's data dir), or holds anything else, is refused and left untouched.
    """
    if folder.exists() and not folder.is_dir():
        raise _DemoDirRefused(f"--dir {folder}: is a file, not a folder")
    lock = DataDirLock(folder, "cli")
    if not lock.try_acquire():
        holder = read_holder(folder) or {}
        who = f"{holder.get('role', 'another process')} pid {holder.get('pid', '?')}" if holder else "another process"
        raise _DemoDirRefused(f"--dir {folder}: is in use by {who}; pick another folder")
    try:
        contents = sorted(p for p in folder.iterdir() if p.name != LOCK_FILE)
        if contents and not _made_by_demo(folder):
            names = ", ".join(p.name for p in contents[:5]) + (", …" if len(contents) > 5 else "")
            raise _DemoDirRefused(
                f"--dir {folder}: not a folder the demo made (it holds {names}); the demo empties only "
                "its own folders: pick a new or empty one"
            )
        for path in contents:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        (folder / DEMO_MARKER).write_text(
            "made by `run_scheduler.py demo`: the next demo run on this folder empties it\n", encoding="utf-8"
        )
    except BaseException:
        lock.release()
        raise
    return lock


def _made_by_demo(folder: Path) -> bool:
    """The folder holds the demo's marker and its job files hold only the demo's jobs."""
    if not (folder / DEMO_MARKER).is_file():
        return False
    for day_file in (folder / "jobs").glob("jobs_*.json"):
        try:
            jobs = json.loads(day_file.read_bytes()).get("jobs", {})
        except (OSError, ValueError, AttributeError):
            return False
        if any(not isinstance(job, dict) or job.get("account_id") != _DEMO_ACCOUNT for job in jobs.values()):
            return False
    return True


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    out: Output = args.out
    if args.panels < 1:
        sys.stderr.write("error: --panels must be at least 1\n")
        return 2
    data_dir: Path = args.dir
    try:
        lock = _take_demo_dir(data_dir)
    except _DemoDirRefused as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    progress = _Progress(out)
    machine_log = logging.getLogger("services.pipeline.engine.machine")
    began = time.monotonic()
    # the demo runs on the embedded defaults whatever the environment and the settings file
    # say: no keys, no network; nothing of the process environment is read or changed
    embedded = PipelineSettings.embedded()
    try:
        out.line(f"demo data dir: {data_dir}")
        chapter = sample_chapter.make_chapter(embedded.local_chapters(data_dir), panels=args.panels)
        out.line(f"sample chapter: {chapter} ({args.panels} panels)")
        for stage, backend in backend_names(embedded).items():
            out.line(f"  {stage:<7} {backend}")
        demo_settings = Settings.from_env({}, data_dir=str(data_dir))
        machine_log.addHandler(progress)
        machine_log.setLevel(logging.INFO)
        extension = PipelineExtension(settings=PipelineSettings.embedded)
        scheduler = Scheduler.from_settings(demo_settings, extensions=[extension])
        scheduler.load()
        job = scheduler.add_job(_DEMO_ACCOUNT, "next")
        out.line(f"job {job.job_id} (pipeline.video):")
        asyncio.run(scheduler.run_once())
        job = scheduler.get_job(job.job_id)
    finally:
        lock.release()
        machine_log.removeHandler(progress)
    if progress.failed is not None:
        raise progress.failed
    if job.status is not JobStatus.COMPLETED or not job.result:
        sys.stderr.write(f"error: the demo video failed: {job.error}\n")
        return 1
    video = Path(str(job.result["youtube_url"]).removeprefix("file://"))
    out.changed(f"the demo video was made: {video}")
    metadata = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        seconds = float(container.duration or 0) / av.time_base
        size = f"{stream.width}x{stream.height}"
    voice = "placeholder tone" if metadata["placeholder_voice"] else metadata["voice"]
    out.line(f"{video}")
    out.line(
        f'published "{metadata["title"]}": {args.panels} panels, {seconds:.1f} s, {size}, '
        f"voice {voice}, {video.stat().st_size / 1e6:.1f} MB, made in {time.monotonic() - began:.1f} s"
    )
    return 0
