"""Settings: the daemon's configuration, read from the environment once at start.

| variable | default | meaning |
| --- | --- | --- |
| DATA_DIR | ./data | jobs/, the lock, the API token |
| SCHEDULER_TIMEZONE | Asia/Ho_Chi_Minh | zone of "today" and of the daily file names |
| API_PORT | 8008 | the local HTTP API port on 127.0.0.1 (0 picks a free port) |
| MAX_CONCURRENT_JOBS | 1 | runs that may overlap |
| SHUTDOWN_GRACE_SECONDS | 30 | how long SIGTERM waits for a running job |
| API_TIMEOUT_SECONDS | 30 | how long a command waits for the daemon's answer |
| LOG_LEVEL | INFO | logging threshold |
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

from .clock import DEFAULT_TIMEZONE, load_timezone
from .errors import SchedulerError

__all__ = ["Settings", "SettingsError"]


class SettingsError(SchedulerError):
    """An environment variable holds a value the scheduler cannot use."""

    exit_code = 2
    code = "invalid_setting"


@dataclass(frozen=True)
class Settings:
    """The scheduler's configuration; ``from_env`` reads and checks it."""

    data_dir: Path = Path("data")
    timezone_name: str = DEFAULT_TIMEZONE
    api_port: int = 8008
    max_concurrent_jobs: int = 1
    shutdown_grace_seconds: float = 30.0
    api_timeout_seconds: float = 30.0
    log_level: str = "INFO"
    zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = load_timezone(self.timezone_name)
        except ValueError as exc:
            raise SettingsError(f"SCHEDULER_TIMEZONE: {exc}") from None
        object.__setattr__(self, "zone", zone)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, data_dir: str | os.PathLike[str] | None = None
    ) -> Settings:
        """Settings from ``environ`` (default os.environ); ``data_dir`` overrides DATA_DIR."""
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(data_dir if data_dir is not None else env.get("DATA_DIR", "data")),
            timezone_name=env.get("SCHEDULER_TIMEZONE", DEFAULT_TIMEZONE),
            api_port=_int(env, "API_PORT", 8008, low=0, high=65535),
            max_concurrent_jobs=_int(env, "MAX_CONCURRENT_JOBS", 1, low=1, high=1000),
            shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", 30.0),
            api_timeout_seconds=_float(env, "API_TIMEOUT_SECONDS", 30.0) or 30.0,
            log_level=_log_level(env),
        )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"LOG_LEVEL: must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    return level


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}: must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{name}: must be a finite number >= 0, got {text!r}")
    return value
