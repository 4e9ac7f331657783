"""``run_scheduler.py doctor``: which backend each stage will use, and what is checked offline.

It reads the settings (environment + settings file, see ``settings.py``), prints one line
per stage naming its backend, then runs the checks that need no network: the bundled
ffmpeg runs, the subtitle font is installed, espeak-ng (optional), the data dir is
writable, and each secret file a setting names exists and is 0600. Exit 1 when the
settings are broken or a required check fails; 0 otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from services.scheduler.settings import SettingsError

from .providers.fonts import font_path
from .settings import PipelineSettings, load_settings, read_secret_file, settings_file
from .stages import backend_names

__all__ = ["Check", "doctor_report", "run_checks"]


@dataclass(frozen=True)
class Check:
    """One offline check: its name, whether it passed, what was seen; optional ones only warn."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def run_checks(settings: PipelineSettings, data_dir: Path) -> list[Check]:
    """Every offline check, in print order."""
    checks = [_ffmpeg(), _font(), _espeak(), _data_dir(data_dir)]
    secret_files: list[tuple[str, Path | None]] = [
        ("OPENAI_API_KEY_FILE", settings.openai_api_key_file),
        ("YOUTUBE_TOKEN_FILE", settings.youtube_token_file),
    ]
    for setting, path in secret_files:
        if path is not None:
            checks.append(_secret_file(setting, path))
    return checks


def doctor_report(data_dir: Path, write: Callable[[str], None]) -> int:
    """Print the report through ``write``; return the exit code (0 healthy, 1 broken)."""
    path = settings_file()
    where = f"{path}" if path.exists() else f"{path} (not present: defaults and the environment)"
    write(f"settings: {where}")
    try:
        settings = load_settings()
    except SettingsError as exc:
        write(f"  BROKEN  {exc}")
        return 1
    for stage, backend in backend_names().items():
        write(f"{stage + ':':<8}{backend}")
    checks = run_checks(settings, data_dir)
    broken = False
    for check in checks:
        mark = "ok" if check.ok else ("FAIL" if check.required else "note")
        broken = broken or (check.required and not check.ok)
        write(f"  {mark:<5} {check.name}: {check.detail}")
    return 1 if broken else 0


def _ffmpeg() -> Check:
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        done = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Check("ffmpeg", False, f"cannot run the bundled ffmpeg: {exc}")
    if done.returncode != 0:
        return Check("ffmpeg", False, f"{exe} exited {done.returncode}")
    version = (done.stdout.splitlines() or ["?"])[0]
    return Check("ffmpeg", True, f"{version.split(' Copyright')[0]} ({exe})")


def _font() -> Check:
    try:
        return Check("font", True, f"Be Vietnam Pro ({font_path('SemiBold')})")
    except FileNotFoundError as exc:
        return Check("font", False, str(exc))


def _espeak() -> Check:
    found = shutil.which("espeak-ng")
    if found:
        return Check("espeak-ng", True, found, required=False)
    missing = "not installed: the embedded voice is a placeholder tone"
    return Check("espeak-ng", False, missing, required=False)


def _data_dir(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{data_dir} is not writable: {exc.strerror or exc}")
    return Check("data dir", True, f"{data_dir.resolve()} is writable")


def _secret_file(setting: str, path: Path) -> Check:
    try:
        read_secret_file(path, setting)
    except SettingsError as exc:
        return Check(setting, False, str(exc).removeprefix(f"{setting}: "))
    return Check(setting, True, f"{path} (mode {os.stat(path).st_mode & 0o777:o})")
