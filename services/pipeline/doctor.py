"""``run_scheduler.py doctor``: which backend each stage will use and why, and what can be checked.

It reads the settings (environment + settings file, see ``settings.py``), prints one line
per stage naming its backend and the setting that chose it (and the same for each
account of the ``[accounts]`` table), then runs the checks: the bundled ffmpeg runs, the
subtitle font is installed, espeak-ng (optional), the data dir is writable, each secret
file a setting names exists and is 0600, the settings a chosen backend needs are there,
the local chapter folder has a chapter left to take (a warning: a fresh data dir has
none), which tracks MUSIC_DIR holds (a note when none), for a Spot backend the AWS side
(``spot_checks``: credentials found, never printed; the bucket, AMI, subnets, security
group and instance profile there; a launch allowed, by DryRun), and (unless ``--offline``) each YouTube token is refreshed with Google, so a token
that stopped refreshing is found before a day's run rather than after a render. Exit 1
when the settings are broken or a required check fails; 0 otherwise.

It only reads: a data dir that does not exist yet is reported (with whether it could be
created: its nearest existing parent is writable), not created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from services.pipeline.providers.fetch.local_source import LocalFolderSource
from services.pipeline.providers.fonts import font_path
from services.pipeline.settings import (
    PipelineSettings,
    load_settings,
    read_secret_file,
    settings_file,
)
from services.pipeline.stages import backend_names
from services.scheduler.settings import SettingsError

__all__ = ["Check", "MANGADEX_POLICY", "doctor_report", "run_checks", "spot_checks"]

MANGADEX_POLICY = (
    "MangaDex: credit the site, the scanlation group and the chapter in every video (done in the "
    "description); honour removal requests; no ads or paid services built on its API. You must hold "
    "the rights to what you publish. See https://mangadex.org/compliance"
)


_PER_ACCOUNT = ("fetch", "tts", "upload")
"""The stages an ``[accounts.<id>]`` table can change."""


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, what was seen; optional ones only warn."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def run_checks(
    settings: PipelineSettings,
    data_dir: Path,
    *,
    online: bool = True,
    refresh: Callable[[Path], str] | None = None,
) -> list[Check]:
    """Every check, in print order; ``online`` refreshes the YouTube tokens.

    :param refresh: refreshes one token file and says until when it is valid (default:
        ``youtube.check_token``, with Google).
    """
    checks = [_ffmpeg(), _font(), _espeak(), _data_dir(data_dir)]
    # with an [accounts] table only its accounts run (any other is refused)
    views = [settings.for_account(name) for name in sorted(settings.accounts)] or [settings]
    seen: set[tuple[str, Path]] = set()
    for view in [settings, *views]:
        for setting, path in (
            ("OPENAI_API_KEY_FILE", view.openai_api_key_file),
            ("YOUTUBE_TOKEN_FILE", view.youtube_token_file),
        ):
            if path is not None and (setting, path) not in seen:
                seen.add((setting, path))
                checks.append(_secret_file(setting, path))
    checks.extend(_needs(settings, views))
    if any(view.fetch_source == "local" for view in views):
        checks.append(_local_chapters(settings.local_chapters(data_dir), data_dir))
    for folder in dict.fromkeys(view.music_folder(data_dir) for view in [settings, *views]):
        checks.append(_music(folder))
    if online:
        spot_seen: set[tuple[Any, ...]] = set()
        for view in [settings, *views]:
            for kind in ("render", "upload"):
                if getattr(view, f"{kind}_backend") != "spot":
                    continue
                key = (kind, view.render_bucket, view.aws_region, *_role_values(view, kind))
                if key not in spot_seen:
                    spot_seen.add(key)
                    checks.extend(spot_checks(view, kind))
        for view in views:
            token = view.youtube_token_file
            if view.upload_target == "youtube" and token is not None and ("refresh", token) not in seen:
                seen.add(("refresh", token))
                checks.append(_refresh(token, refresh))
    return checks


def doctor_report(
    data_dir: Path,
    write: Callable[[str], None],
    *,
    online: bool = True,
    refresh: Callable[[Path], str] | None = None,
) -> int:
    """Print the report through ``write``; return the exit code (0 healthy, 1 broken)."""
    path = settings_file()
    where = f"{path}" if path.exists() else f"{path} (not present: defaults and the environment)"
    write(f"settings: {where}")
    try:
        settings = load_settings()
        accounts = {name: settings.for_account(name) for name in sorted(settings.accounts)}
    except SettingsError as exc:
        write(f"  BROKEN  {exc}")
        return 1
    for stage, backend in backend_names(settings).items():
        if accounts and stage in _PER_ACCOUNT:
            backend = "per account, below"
        write(f"{stage + ':':<8}{backend}")
    for name, view in accounts.items():
        write(f"account {name}:")
        for stage, backend in backend_names(view).items():
            if stage in _PER_ACCOUNT:
                write(f"  {stage + ':':<8}{backend}")
    if settings.fetch_source == "mangadex":
        write(f"note:   {MANGADEX_POLICY}")
    broken = False
    for check in run_checks(settings, data_dir, online=online, refresh=refresh):
        mark = "ok" if check.ok else ("FAIL" if check.required else "note")
        broken = broken or (check.required and not check.ok)
        write(f"  {mark:<5} {check.name}: {check.detail}")
    return 1 if broken else 0


def _needs(settings: PipelineSettings, views: list[PipelineSettings]) -> list[Check]:
    """The settings each chosen backend cannot work without."""
    checks = []
    if settings.uses_llm() and settings.openai_base_url is None and settings.openai_api_key is None:
        if settings.openai_api_key_file is None:
            checks.append(
                Check("openai", False, "SCRIPT_WRITER=openai for api.openai.com needs OPENAI_API_KEY")
            )
    for view in views:
        if view.fetch_source == "mangadex" and not (view.manga_ids or view.manga_search):
            checks.append(Check("mangadex", False, "FETCH_SOURCE=mangadex needs MANGA_IDS or MANGA_SEARCH"))
            break
    for view in views:
        if view.upload_target == "youtube" and view.youtube_token_file is None:
            hint = "UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE (made by `run_scheduler.py youtube-auth`)"
            checks.append(Check("youtube", False, hint))
            break
    if settings.tts_engine == "edge-tts":
        detail = "edge-tts needs the network at run time (speech.platform.bing.com); not checked here"
        checks.append(Check("edge-tts", True, detail, required=False))
    return checks


def _refresh(token: Path, refresh: Callable[[Path], str] | None) -> Check:
    """Refresh a YouTube token with Google now: proof that uploads will be authorised."""
    import google.auth.exceptions  # the Google client loads only when a token is checked

    from services.pipeline.providers.upload import youtube

    try:
        return Check("youtube token", True, f"{token}: {(refresh or youtube.check_token)(token)}")
    except (youtube.YouTubeAuthError, SettingsError) as exc:
        return Check("youtube token", False, f"{token}: {exc}")
    except (OSError, google.auth.exceptions.TransportError) as exc:
        return Check("youtube token", False, f"{token}: cannot reach Google to refresh it: {exc}")


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
    """Whether the data dir is writable; one that does not exist yet is not created."""
    where = data_dir.absolute()
    if not where.exists():
        parent = next((p for p in where.parents if p.exists()), None)
        if parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            detail = f"{where} does not exist yet; it can be created ({parent} is writable)"
            return Check("data dir", True, detail)
        detail = f"{where} does not exist and cannot be created ({parent} is not a writable folder)"
        return Check("data dir", False, detail)
    if not where.is_dir():
        return Check("data dir", False, f"{where} is not a directory")
    try:  # a real write says more than os.access (a read-only mount, a full disk's quota)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{where} is not writable: {exc.strerror or exc}")
    return Check("data dir", True, f"{where.resolve()} is writable")


def _local_chapters(samples: Path, data_dir: Path) -> Check:
    """A warning when the local folder has no chapter left to take: `add-job` would fail."""
    source = LocalFolderSource(samples, data_dir)
    try:
        found, left = len(source.chapters()), len(source.available())
    except (OSError, ValueError) as exc:
        return Check("local chapters", False, f"cannot read {samples} or its ledger: {exc}", required=False)
    if left:
        detail = f"{left} of {found} chapter(s) in {samples} not made into a video yet"
        return Check("local chapters", True, detail, required=False)
    hint = (
        "add chapters as SAMPLES_DIR/<manga>/chapter-0001/panel-*.png (SAMPLES_DIR defaults to "
        "DATA_DIR/samples), or set FETCH_SOURCE=mangadex with MANGA_IDS"
    )
    why = f"all {found} chapter(s) in {samples} are taken" if found else f"no chapter in {samples}"
    return Check("local chapters", False, f"{why}: a video job would find no manga; {hint}", required=False)


def _role_values(settings: PipelineSettings, kind: str) -> tuple[Any, ...]:
    prefix = "renderer" if kind == "render" else "uploader"
    return tuple(getattr(settings, f"{prefix}_{name}") for name in
                 ("ami_id", "instance_type", "subnet_id", "security_group_id", "iam_instance_profile"))


def spot_checks(settings: PipelineSettings, kind: str, *, session: Any = None) -> list[Check]:
    """RENDER_BACKEND / UPLOAD_BACKEND=spot: AWS credentials found (never printed), the
    bucket reachable, the AMI, subnets, security group and instance profile there, and a
    launch allowed (RunInstances with DryRun)."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return [Check(f"spot {kind}", False, "boto3 is not installed: pip install 'video-scheduler[spot]'")]
    name = f"spot {kind}"
    prefix = "RENDERER" if kind == "render" else "UPLOADER"
    ami, instance_type, subnets, group, profile = _role_values(settings, kind)
    session = session or boto3.session.Session(region_name=settings.aws_region)
    credentials = session.get_credentials()
    if credentials is None:
        return [Check(f"{name}: credentials", False, "no AWS credentials found (environment, ~/.aws, instance "
                      "profile): the daemon needs them to launch and watch workers")]
    checks = [Check(f"{name}: credentials", True, f"found ({credentials.method})")]

    def ask(what: str, call: Callable[[], Any], ok: str) -> None:
        try:
            call()
            checks.append(Check(f"{name}: {what}", True, ok))
        except (ClientError, BotoCoreError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            if code == "DryRunOperation":
                checks.append(Check(f"{name}: {what}", True, ok))
            else:
                checks.append(Check(f"{name}: {what}", False, f"{code}: {exc}"))

    s3, ec2 = session.client("s3"), session.client("ec2")
    if not settings.render_bucket:
        checks.append(Check(f"{name}: bucket", False, "RENDER_BUCKET is not set"))
    else:
        ask("bucket", lambda: s3.head_bucket(Bucket=settings.render_bucket), f"s3://{settings.render_bucket} reachable")
    if not ami:
        checks.append(Check(f"{name}: AMI", False, f"{prefix}_AMI_ID is not set"))
        return checks

    def image() -> None:
        if not ec2.describe_images(ImageIds=[ami])["Images"]:
            raise ClientError({"Error": {"Code": "InvalidAMIID.NotFound", "Message": ami}}, "DescribeImages")

    ask("AMI", image, f"{ami} exists in {settings.aws_region}")
    subnet_ids = [s.strip() for s in (subnets or "").split(",") if s.strip()]
    if subnet_ids:
        ask("subnets", lambda: ec2.describe_subnets(SubnetIds=subnet_ids), ", ".join(subnet_ids))
    if group:
        ask("security group", lambda: ec2.describe_security_groups(GroupIds=[group]), group)
    if profile:
        profile_name = profile.rsplit("/", 1)[-1]
        ask("instance profile", lambda: session.client("iam").get_instance_profile(InstanceProfileName=profile_name),
            profile_name)
    launch = {"ImageId": ami, "InstanceType": instance_type, "MinCount": 1, "MaxCount": 1, "DryRun": True}
    if subnet_ids:
        launch["SubnetId"] = subnet_ids[0]
    ask("launch allowed", lambda: ec2.run_instances(**launch), f"RunInstances {instance_type} (DryRun)")
    return checks


def _music(folder: Path) -> Check:
    """Which tracks MUSIC_DIR holds (a note when none: the videos go out without music)."""
    from services.pipeline.providers.render.narration_audio import music_tracks

    tracks = music_tracks(folder)
    if tracks:
        return Check("music", True, f"{len(tracks)} track(s) in {folder}, one per video under the voice")
    return Check("music", False, f"no track in {folder}: videos have no music (add mp3/m4a/ogg/flac/wav "
                 "there, or set MUSIC_DIR)", required=False)


def _secret_file(setting: str, path: Path) -> Check:
    try:
        read_secret_file(path, setting)
    except SettingsError as exc:
        return Check(setting, False, str(exc).removeprefix(f"{setting}: "))
    return Check(setting, True, f"{path} (mode {os.stat(path).st_mode & 0o777:o})")
