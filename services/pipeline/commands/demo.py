"""``demo [--dir DIR] [--panels N] [--format landscape|shorts]``: one video end to end on the embedded defaults in its
own data dir (default ``data/demo``): draws a sample chapter, adds a ``pipeline.video``
job, runs it, shows each state as it goes, and prints the MP4's path and a one-line
summary. It empties DIR first only if an earlier demo made it (its marker file
DEMO_MARKER, and only the demo's jobs); a locked folder, or one holding anything else,
is refused with exit 2 and left as it was. Exit 1 if the video failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import av

from services.pipeline.errors import VideoPipelineError
from services.pipeline.extension import PipelineExtension
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.render import sample_music
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import backend_names
from services.scheduler.lock import LOCK_FILE, DataDirLock, read_holder
from services.scheduler.models import JobStatus
from services.scheduler.output import Output, OutputFailed
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import Settings

__all__ = ["DEMO_MARKER", "demo_command"]


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


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Make one video in ``--dir`` and print its path and summary."""
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
    embedded = PipelineSettings.embedded(args.format)
    try:
        out.line(f"demo data dir: {data_dir}")
        chapter = sample_chapter.make_chapter(embedded.local_chapters(data_dir), panels=args.panels)
        out.line(f"sample chapter: {chapter} ({args.panels} panels)")
        bed = sample_music.make_bed(embedded.music_folder(data_dir))
        out.line(f"music bed: {bed} (ducked under the voice; a creator's tracks go in MUSIC_DIR)")
        for stage, backend in backend_names(embedded).items():
            out.line(f"  {stage:<7} {backend}")
        demo_settings = Settings.from_env({}, data_dir=str(data_dir))
        machine_log.addHandler(progress)
        machine_log.setLevel(logging.INFO)
        extension = PipelineExtension(settings=functools.partial(PipelineSettings.embedded, args.format))
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
