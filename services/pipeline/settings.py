"""The pipeline's settings: one typed object from the environment and ``config/settings.toml``.

Precedence: environment variables (names as below, upper case) over the settings file
(same names, lower case) over the defaults. The file is ``config/settings.toml`` in the
repository, or the path in ``PIPELINE_SETTINGS_FILE``; it is optional, git-ignored, and
``config/settings.example.toml`` shows every key. An unknown key in the file is an error
(a typo would otherwise be ignored silently).

Secrets never come from the file: ``openai_api_key`` there is refused. A secret comes from
its environment variable, or from a file whose path the settings name (``*_FILE``), which
must be readable by its owner only (0600 or stricter). Secrets are held as ``SecretStr``,
so a log or a ``repr`` shows ``**********``.

| variable | default | meaning |
| --- | --- | --- |
| FETCH_SOURCE | local | where chapters come from: ``local`` (SAMPLES_DIR) or ``mangadex`` |
| MANGADEX_API_URL | https://api.mangadex.org | MangaDex API v5 (a mirror or test server may stand in) |
| MANGADEX_REPORT_URL | https://api.mangadex.network/report | where image-delivery reports go |
| MANGADEX_DATA_SAVER | false | fetch the at-home ``dataSaver`` pages (smaller JPEGs) |
| MANGA_LANGUAGE | vi | the chapters' translated language |
| MANGA_IDS | [] | MangaDex manga ids to take chapters from, in order (JSON list in the environment) |
| MANGA_SEARCH | unset | or a title search, filtered by the three below |
| MANGA_CONTENT_RATING | ["safe", "suggestive"] | contentRating[] of the search and the chapter feed |
| MANGA_ORIGINAL_LANGUAGE | [] | originalLanguage[] of the search (e.g. ["ja", "ko"]) |
| MANGA_ORDER | {"followedCount": "desc"} | order of the search |
| READING_DIRECTION | auto | the panels' order across a row: ``rtl`` (manga), ``ltr``, or ``auto``: the chapter's own (``manga.json``), else rtl for a Japanese original (MangaDex ``originalLanguage``), else ltr |
| SCRIPT_WRITER | auto | ``template``, ``openai``, or ``auto``: openai when a key or OPENAI_BASE_URL is set |
| OPENAI_BASE_URL | (the SDK's: https://api.openai.com/v1) | any OpenAI-compatible server |
| OPENAI_API_KEY / OPENAI_API_KEY_FILE | unset | the LLM's key (secret; a local server needs none) |
| OPENAI_MODEL | gpt-4o-mini | the chat model |
| OPENAI_VISION | on for OpenAI, off for another server | send the panels to the model as images |
| OPENAI_IMAGES_PER_REQUEST | 8 | panels per request, so a request fits the context |
| OPENAI_TIMEOUT_SECONDS / OPENAI_MAX_RETRIES | 120 / 2 | the SDK's own timeout and retries |
| TTS_ENGINE | local | ``local`` (espeak-ng, else a tone) or ``edge-tts`` |
| TTS_VOICE / TTS_FALLBACK_VOICE | vi-VN-HoaiMyNeural / vi-VN-NamMinhNeural | edge-tts voices |
| TTS_RATE / TTS_PITCH | +0% / +0Hz | edge-tts prosody |
| TTS_CONCURRENCY | 2 | segments spoken at once by edge-tts (1-4) |
| UPLOAD_TARGET | local | ``local`` (DATA_DIR/published) or ``youtube`` |
| YOUTUBE_PRIVACY | private | privacyStatus of uploads: private, unlisted or public |
| YOUTUBE_TOKEN_FILE | unset | the OAuth refresh token file (secret, 0600), made by ``youtube-auth`` |
| YOUTUBE_CLIENT_SECRETS_FILE | unset | the OAuth client (Desktop app) JSON ``youtube-auth`` uses |
| YOUTUBE_CATEGORY_ID | 24 | the videos' category (24 = Entertainment) |
| YOUTUBE_API_URL | (Google's: https://youtube.googleapis.com/) | the Data API's root (proxy, test server) |
| YOUTUBE_PUBLISH_AT | unset | HH:MM Vietnam time: upload private, published at the next such time |
| YOUTUBE_THUMBNAIL | true | set a thumbnail: the most striking panel with the title (channels allowed custom thumbnails) |
| DAILY_QUOTA | 10 | videos a Vietnam day may count before CheckQuota says the quota is reached |
| SAMPLES_DIR | DATA_DIR/samples | the local chapters folder (``FETCH_SOURCE=local``) |
| VIDEO_FORMAT | landscape | ``landscape`` (1920×1080) or ``shorts`` (1080×1920) |
| MUSIC_DIR | DATA_DIR/music | background music: a track from this folder (mp3, m4a, ogg, opus, flac, wav), looped under the voice, faded, ducked 13.5 dB where it speaks; no folder or no track: no music |
| SHORTS_CUT | false | also make a Shorts cut: the chapter's opening in 9:16 (whole segments, up to SHORTS_SECONDS), published after the video with a link to it |
| SHORTS_SECONDS | 60 | the Shorts cut's length at most, 15 to 180 (YouTube takes Shorts up to 3 minutes) |
| MOTION | none | ``push``: a slow push-in at each cut (moving frames cost encoding time), or ``none``: still framings |
| RENDER_BACKEND | local | where the render runs: ``local`` (a worker process here) or ``spot`` (an EC2 Spot instance) |
| UPLOAD_BACKEND | local | where the upload runs: ``local`` or ``spot`` |
| RENDER_BUCKET | unset | the S3 bucket a Spot worker's inputs, heartbeats, result and video go through (``jobs/<job_id>/``, ``tasks/<token>/``) |
| AWS_REGION | ap-southeast-1 | the region of the bucket and the instances (the seed's default) |
| RENDERER_AMI_ID | unset | the render instance's AMI (Python 3.11+, the AWS CLI); its architecture picks x86_64 or arm64 types |
| RENDERER_INSTANCE_TYPE | c5.2xlarge | the first type asked for; c6i, c7i, m5, m6i (x86) or c7g, c6g (arm64) .2xlarge follow |
| RENDERER_SECURITY_GROUP_ID | unset | the render instance's security group |
| RENDERER_SUBNET_ID | unset | its subnet; several, comma-separated, let the fleet pick a zone with capacity |
| RENDERER_IAM_INSTANCE_PROFILE | unset | its instance profile (name or ARN): S3 access to the bucket's job prefix |
| UPLOADER_AMI_ID, UPLOADER_INSTANCE_TYPE (t3.medium), UPLOADER_SECURITY_GROUP_ID, UPLOADER_SUBNET_ID, UPLOADER_IAM_INSTANCE_PROFILE | | the same for a Spot upload |
| SPOT_MAX_HOURLY_USD | unset | the cost guard: a type whose current Spot price is higher is not launched |
| SPOT_MONTHLY_BUDGET_USD | unset | past this month's estimated Spot spend, renders run locally |
| SPOT_FALLBACK | local | when no Spot instance can be had: ``local`` (run here, with a warning) or ``fail`` |
| SPOT_SECRET_PREFIX | /video-scheduler | where a Spot upload's YouTube token travels: an SSM SecureString ``<prefix>/tasks/<token>/youtube-token``, deleted when the wait ends |
| SPOT_KMS_KEY_ID | unset (aws/ssm) | the KMS key that encrypts it |
| TASK_TRANSPORT | local | where render and upload workers run: ``local`` (a process here) |

The settings are read in one place: ``load_settings`` (process environment + file), by the
CLI, the daemon at the start of each video run, ``doctor`` and ``youtube-auth``. Nothing
else reads them from the environment: a stage gets them from its context
(``context.settings_for(account)``), a worker process from its task file
(``PipelineSettings.from_values``, which reads no environment), and ``demo`` runs on
``PipelineSettings.embedded()`` whatever the environment says.

Per-account settings: a ``[accounts.<account_id>]`` table in the settings file (only there)
overrides, for the jobs of that account (a channel), any of ``manga_ids``,
``manga_search``, ``manga_content_rating``, ``manga_original_language``, ``manga_order``,
``reading_direction``, ``motion``, ``music_dir``, ``shorts_cut``, ``shorts_seconds``, ``render_backend``, ``upload_backend``, ``tts_voice``, ``tts_fallback_voice``, ``tts_rate``, ``tts_pitch``, ``youtube_privacy``,
``youtube_token_file``, ``youtube_category_id`` and ``youtube_publish_at``. When the table
lists accounts, a job of an account it does not list is refused (it would otherwise
publish on another channel's token); without the table every account uses the values above.
"""

from __future__ import annotations

import os
import stat
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from services.scheduler.settings import SettingsError

__all__ = [
    "AccountSettings",
    "PipelineSettings",
    "SECRET_FIELDS",
    "load_settings",
    "read_secret_file",
    "settings_file",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SETTINGS_FILE = REPO_ROOT / "config" / "settings.toml"
SECRET_FIELDS = ("openai_api_key",)
DEFAULT_ACCOUNT = "default"
DEFAULT_DAILY_QUOTA = 10

Url = Annotated[str, Field(pattern=r"^https?://\S+$")]
Voice = Annotated[str, Field(pattern=r"^[a-z]{2,3}-[A-Z]{2}-\w+$")]
Rate = Annotated[str, Field(pattern=r"^[+-]\d{1,3}%$")]
Pitch = Annotated[str, Field(pattern=r"^[+-]\d{1,3}Hz$")]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Privacy = Literal["private", "unlisted", "public"]
ContentRating = Literal["safe", "suggestive", "erotica", "pornographic"]
OrderDirection = Literal["asc", "desc"]
Direction = Literal["auto", "rtl", "ltr"]
Motion = Literal["none", "push"]
Backend = Literal["local", "spot"]
MangaId = Annotated[str, Field(pattern=r"^[0-9a-fA-F-]{36}$")]


class AccountSettings(BaseModel):
    """One channel's overrides (``[accounts.<id>]``); unset fields take the global values."""

    model_config = ConfigDict(extra="forbid")

    manga_ids: list[MangaId] | None = None
    manga_search: str | None = None
    manga_content_rating: list[ContentRating] | None = None
    manga_original_language: list[str] | None = None
    manga_order: dict[str, OrderDirection] | None = None
    reading_direction: Direction | None = None
    motion: Motion | None = None
    music_dir: Path | None = None
    shorts_cut: bool | None = None
    shorts_seconds: int | None = Field(None, ge=15, le=180)
    render_backend: Backend | None = None
    upload_backend: Backend | None = None
    tts_voice: Voice | None = None
    tts_fallback_voice: Voice | None = None
    tts_rate: Rate | None = None
    tts_pitch: Pitch | None = None
    youtube_privacy: Privacy | None = None
    youtube_token_file: Path | None = None
    youtube_category_id: str | None = Field(None, pattern=r"^\d{1,3}$")
    youtube_publish_at: ClockTime | None = None


class PipelineSettings(BaseSettings):
    """Every pipeline setting, typed and checked (see the module docstring for the table)."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, env_prefix="")

    fetch_source: str = "local"
    mangadex_api_url: Url = "https://api.mangadex.org"
    mangadex_report_url: Url = "https://api.mangadex.network/report"
    mangadex_data_saver: bool = False
    manga_language: str = Field("vi", pattern=r"^[a-z]{2}(-[a-z]{2})?$")
    manga_ids: list[MangaId] = Field(default_factory=list)
    manga_search: str | None = None
    manga_content_rating: list[ContentRating] = Field(default_factory=lambda: ["safe", "suggestive"])
    manga_original_language: list[str] = Field(default_factory=list)
    manga_order: dict[str, OrderDirection] = Field(default_factory=lambda: {"followedCount": "desc"})
    reading_direction: Direction = "auto"
    script_writer: str = "auto"
    openai_base_url: Url | None = None
    openai_api_key: SecretStr | None = None
    openai_api_key_file: Path | None = None
    openai_model: str = Field("gpt-4o-mini", min_length=1)
    openai_vision: bool | None = None
    openai_images_per_request: int = Field(8, ge=1, le=50)
    openai_timeout_seconds: float = Field(120.0, gt=0, le=3600)
    openai_max_retries: int = Field(2, ge=0, le=10)
    tts_engine: str = "local"
    tts_voice: Voice = "vi-VN-HoaiMyNeural"
    tts_fallback_voice: Voice = "vi-VN-NamMinhNeural"
    tts_rate: Rate = "+0%"
    tts_pitch: Pitch = "+0Hz"
    tts_concurrency: int = Field(2, ge=1, le=4)
    upload_target: str = "local"
    youtube_privacy: Privacy = "private"
    youtube_token_file: Path | None = None
    youtube_client_secrets_file: Path | None = None
    youtube_category_id: str = Field("24", pattern=r"^\d{1,3}$")
    youtube_api_url: Url | None = None
    youtube_publish_at: ClockTime | None = None
    youtube_thumbnail: bool = True
    daily_quota: int = DEFAULT_DAILY_QUOTA
    samples_dir: Path | None = None
    video_format: Literal["landscape", "shorts"] = "landscape"
    motion: Motion = "none"
    music_dir: Path | None = None
    shorts_cut: bool = False
    shorts_seconds: int = Field(60, ge=15, le=180)
    task_transport: str = "local"
    render_backend: Backend = "local"
    upload_backend: Backend = "local"
    render_bucket: str | None = None
    aws_region: str = "ap-southeast-1"
    renderer_ami_id: str | None = None
    renderer_instance_type: str = "c5.2xlarge"
    renderer_security_group_id: str | None = None
    renderer_subnet_id: str | None = None
    renderer_iam_instance_profile: str | None = None
    uploader_ami_id: str | None = None
    uploader_instance_type: str = "t3.medium"
    uploader_security_group_id: str | None = None
    uploader_subnet_id: str | None = None
    uploader_iam_instance_profile: str | None = None
    spot_max_hourly_usd: float | None = Field(None, gt=0)
    spot_monthly_budget_usd: float | None = Field(None, ge=0)
    spot_fallback: Literal["local", "fail"] = "local"
    spot_secret_prefix: str = Field("/video-scheduler", pattern=r"^/[A-Za-z0-9_./-]*[A-Za-z0-9_-]$")
    spot_kms_key_id: str | None = None
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment wins over the file's values, which arrive as init arguments
        return (env_settings, init_settings)

    @field_validator("fetch_source", "script_writer", "tts_engine", "upload_target")
    @classmethod
    def _known_backend(cls, value: str, info: Any) -> str:
        from services.pipeline.providers.registry import SETTINGS, names  # it imports no settings

        kind = next(kind for kind, field in SETTINGS.items() if field == info.field_name)
        allowed = (["auto"] if kind == "script" else []) + names(kind)
        if value not in allowed:
            raise ValueError(f"{info.field_name.upper()} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    @field_validator("task_transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        from services.pipeline.tasks.transport import transport_names  # they import no settings

        names = transport_names()
        if value not in names:
            raise ValueError(f"TASK_TRANSPORT must be one of {', '.join(names)}, got {value!r}")
        return value

    @field_validator("daily_quota", mode="before")
    @classmethod
    def _whole_quota(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"DAILY_QUOTA must be a whole number >= 0, got {value!r}")
        text = str(value).strip()
        if not text:
            return DEFAULT_DAILY_QUOTA
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"DAILY_QUOTA must be a whole number >= 0, got {text!r}") from None
        if number < 0:
            raise ValueError(f"DAILY_QUOTA must be a whole number >= 0, got {text!r}")
        return number

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> PipelineSettings:
        """Settings from ``values`` alone (a worker's task file): no environment, no file."""
        return _ValuesOnly(**values)

    @classmethod
    def embedded(cls, video_format: str = "landscape") -> PipelineSettings:
        """The embedded defaults (``demo``): every stage local, no keys, no network; 16:9,
        or 9:16 with ``video_format="shorts"``."""
        return cls.from_values({**EMBEDDED_VALUES, "video_format": video_format})

    def for_worker(self) -> dict[str, Any]:
        """These settings as a worker's task file holds them: JSON, secrets left out.

        A worker renders and publishes; it needs no LLM key. The YouTube token stays in its
        0600 file, named here by path.
        """
        return self.model_dump(mode="json", exclude=set(SECRET_FIELDS))

    def music_folder(self, data_dir: Path) -> Path:
        """MUSIC_DIR, default ``<data_dir>/music``."""
        return self.music_dir if self.music_dir is not None else data_dir / "music"

    def local_chapters(self, data_dir: Path) -> Path:
        """SAMPLES_DIR, default ``<data_dir>/samples``."""
        return self.samples_dir if self.samples_dir is not None else data_dir / "samples"

    def openai_key(self) -> SecretStr | None:
        """The LLM key: OPENAI_API_KEY, else the 0600 file OPENAI_API_KEY_FILE names."""
        if self.openai_api_key is not None:
            return self.openai_api_key
        if self.openai_api_key_file is not None:
            return SecretStr(read_secret_file(self.openai_api_key_file, "OPENAI_API_KEY_FILE"))
        return None

    def uses_llm(self) -> bool:
        """Whether GenerateScript asks an LLM: SCRIPT_WRITER, or ``auto`` with a key or a server."""
        if self.script_writer != "auto":
            return self.script_writer == "openai"
        configured = (self.openai_base_url, self.openai_api_key, self.openai_api_key_file)
        return any(value is not None for value in configured)

    def llm_sees_panels(self) -> bool:
        """OPENAI_VISION, by default on for OpenAI itself and off for another server."""
        return self.openai_vision if self.openai_vision is not None else self.openai_base_url is None

    def for_account(self, account_id: str) -> PipelineSettings:
        """These settings with ``[accounts.<account_id>]`` applied; SettingsError if not listed.

        Without an accounts table every account uses the global values.
        """
        if not self.accounts:
            return self
        account_id = unicodedata.normalize("NFC", account_id)  # as the job stores it
        if account_id not in self.accounts:
            known = ", ".join(sorted(self.accounts))
            raise SettingsError(
                f"account {account_id!r} is not in the settings' [accounts] table (known: {known}); "
                "add it there so its videos go to the right channel"
            )
        overrides = self.accounts[account_id].model_dump(exclude_none=True)
        return self.model_copy(update=overrides)


EMBEDDED_VALUES = {
    "fetch_source": "local",
    "script_writer": "template",
    "tts_engine": "local",
    "upload_target": "local",
}
"""What ``demo`` sets over the defaults: every stage on its embedded backend."""


class _ValuesOnly(PipelineSettings):
    """PipelineSettings validated from its arguments only (see ``from_values``)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_file() -> Path:
    """The settings file's path: PIPELINE_SETTINGS_FILE, else config/settings.toml."""
    named = os.environ.get("PIPELINE_SETTINGS_FILE")
    return Path(named) if named else DEFAULT_SETTINGS_FILE


def load_settings() -> PipelineSettings:
    """Read and check the settings (process environment + file); raise SettingsError."""
    path = settings_file()
    values = _read_file(path)
    for name in SECRET_FIELDS:
        if name in values:
            raise SettingsError(
                f"{path}: {name} is a secret and is not read from the settings file; set "
                f"{name.upper()} in the environment or name a 0600 file with {name}_file"
            )
    if isinstance(values.get("accounts"), dict):  # account ids are NFC, as jobs store them
        values["accounts"] = {unicodedata.normalize("NFC", str(k)): v for k, v in values["accounts"].items()}
    try:
        return PipelineSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        message = str(error.get("msg"))
        if message.startswith("Value error, "):  # our own validator: its message names the setting
            raise SettingsError(message.removeprefix("Value error, ")) from None
        raise SettingsError(f"{where.upper()}: {message}") from None


def read_secret_file(path: Path, setting: str) -> str:
    """A secret from ``path``: it must exist, be owned-only (0600 or stricter) and non-empty."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"{setting}: {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise SettingsError(f"{setting}: {path} is empty")
    return text


def _read_file(path: Path) -> dict[str, Any]:
    """The file's values (pydantic-settings' TOML source), keys lower case; {} if absent."""
    if not path.exists():
        return {}
    if path.is_dir():
        raise SettingsError(f"{path}: cannot read it: it is a folder, not a settings file")
    try:
        data = TomlConfigSettingsSource(PipelineSettings, toml_file=path).toml_data
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return {str(key).lower(): value for key, value in data.items()}
