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
| SCHEDULER_CONFIG | config/scheduler.toml | webhooks and ``http.post`` targets (optional file) |
| SCHEDULER_MISFIRE_GRACE_TIME | 300 | seconds a fire may be late and still count as on time |
| SCHEDULER_MAX_INSTANCES | 3 | default cap on one schedule's unfinished runs |
| MAX_SCHEDULE_LOOKAHEAD_DAYS | 365 | how far ahead a schedule's first fire may lie |
| DEFAULT_MAX_RETRIES | 3 | a new schedule's max_retries when it names none |
| DEFAULT_RETRY_DELAY | 300 | first retry delay in seconds of a schedule's runs (doubling) |
| MAX_SCHEDULES_PER_CREATOR | 1000 | schedules one ``created_by`` may hold (429 past it) |
| SERVICE_NAME | video-scheduler | the name ``/health`` and the metrics give |
| SERVICE_VERSION | the package's version | the version ``/health`` and the metrics give |
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
    config_path: Path = Path("config/scheduler.toml")
    misfire_grace_seconds: float = 300.0
    max_instances: int = 3
    max_lookahead_days: int = 365
    default_max_retries: int = 3
    default_retry_delay_seconds: float = 300.0
    max_schedules_per_creator: int = 1000
    service_name: str = "video-scheduler"
    service_version: str = field(default_factory=lambda: _package_version())
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
            config_path=Path(env.get("SCHEDULER_CONFIG") or "config/scheduler.toml"),
            misfire_grace_seconds=_float(env, "SCHEDULER_MISFIRE_GRACE_TIME", 300.0),
            max_instances=_int(env, "SCHEDULER_MAX_INSTANCES", 3, low=1, high=1000),
            max_lookahead_days=_int(env, "MAX_SCHEDULE_LOOKAHEAD_DAYS", 365, low=1, high=3650),
            default_max_retries=_int(env, "DEFAULT_MAX_RETRIES", 3, low=0, high=100),
            default_retry_delay_seconds=_float(env, "DEFAULT_RETRY_DELAY", 300.0),
            max_schedules_per_creator=_int(env, "MAX_SCHEDULES_PER_CREATOR", 1000, low=1, high=10_000_000),
            service_name=(env.get("SERVICE_NAME") or "video-scheduler").strip(),
            service_version=(env.get("SERVICE_VERSION") or "").strip() or _package_version(),
        )


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("video-scheduler")
    except PackageNotFoundError:
        return "0.0.0"


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
