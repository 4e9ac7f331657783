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
| FETCH_SOURCE | local | where chapters come from: ``local`` (SAMPLES_DIR) |
| MANGADEX_API_URL | https://api.mangadex.org | MangaDex API v5 (a mirror or test server may stand in) |
| OPENAI_BASE_URL | (the SDK's: https://api.openai.com/v1) | any OpenAI-compatible server |
| OPENAI_API_KEY / OPENAI_API_KEY_FILE | unset | the LLM's key (secret) |
| OPENAI_MODEL | gpt-4o-mini | the chat model |
| TTS_VOICE / TTS_FALLBACK_VOICE | vi-VN-HoaiMyNeural / vi-VN-NamMinhNeural | edge-tts voices |
| TTS_RATE / TTS_PITCH | +0% / +0Hz | edge-tts prosody |
| YOUTUBE_PRIVACY | private | privacyStatus of uploads: private, unlisted or public |
| YOUTUBE_TOKEN_FILE | unset | the OAuth refresh token file (secret, 0600) |
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from services.scheduler.settings import SettingsError

__all__ = ["PipelineSettings", "SECRET_FIELDS", "load_settings", "read_secret_file", "settings_file"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SETTINGS_FILE = REPO_ROOT / "config" / "settings.toml"
SECRET_FIELDS = ("openai_api_key",)


class PipelineSettings(BaseSettings):
    """Every pipeline setting, typed and checked (see the module docstring for the table)."""

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, env_prefix="")

    fetch_source: Literal["local"] = "local"  # "mangadex" arrives with its backend
    mangadex_api_url: str = Field("https://api.mangadex.org", pattern=r"^https?://\S+$")
    openai_base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    openai_api_key: SecretStr | None = None
    openai_api_key_file: Path | None = None
    openai_model: str = Field("gpt-4o-mini", min_length=1)
    tts_voice: str = Field("vi-VN-HoaiMyNeural", pattern=r"^[a-z]{2,3}-[A-Z]{2}-\w+$")
    tts_fallback_voice: str = Field("vi-VN-NamMinhNeural", pattern=r"^[a-z]{2,3}-[A-Z]{2}-\w+$")
    tts_rate: str = Field("+0%", pattern=r"^[+-]\d{1,3}%$")
    tts_pitch: str = Field("+0Hz", pattern=r"^[+-]\d{1,3}Hz$")
    youtube_privacy: Literal["private", "unlisted", "public"] = "private"
    youtube_token_file: Path | None = None

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

    def openai_key(self) -> SecretStr | None:
        """The LLM key: OPENAI_API_KEY, else the 0600 file OPENAI_API_KEY_FILE names."""
        if self.openai_api_key is not None:
            return self.openai_api_key
        if self.openai_api_key_file is not None:
            return SecretStr(read_secret_file(self.openai_api_key_file, "OPENAI_API_KEY_FILE"))
        return None


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
    try:
        return PipelineSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        raise SettingsError(f"{where.upper()}: {error.get('msg')}") from None


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
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return {str(key).lower(): value for key, value in data.items()}
