"""The scheduler's config file: webhooks to notify and the targets of ``http.post`` jobs.

The file is TOML, at ``Settings.config_path`` (SCHEDULER_CONFIG, default
``config/scheduler.toml``; ``config/scheduler.example.toml`` documents every key). It is
optional: no file is an empty config. It is read once, at start, and checked whole: a
file that is not TOML, a key that is unknown or a value that breaks its rule is a
``SettingsError`` (exit 2) of one line naming the file, the key and the rule, and the
daemon does not start.

Secrets stay out of the file: a URL that carries a token (a Slack or Discord webhook, a
target's signed URL) is named by ``url_env``, the environment variable holding it, and a
secret header by ``headers_env``. The variables are read when the URL is needed
(``resolve_env``), so a command run from a shell without them still reads the file.

::

    [targets.NAME]                 one per http.post target (``TargetConfig``)
    [[webhooks]]                   one per notification receiver (``WebhookConfig``)
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .notifications import EVENTS
from .settings import SettingsError

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "SchedulerConfig",
    "TargetConfig",
    "WebhookConfig",
    "WebhookFormat",
    "load_scheduler_config",
    "resolve_env",
]

DEFAULT_TIMEOUT_SECONDS = 10.0
TELEGRAM_API = "https://api.telegram.org"

WebhookFormat = Literal["json", "slack", "discord", "telegram"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
_NAME_RULE = "must be 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit"

Seconds = Annotated[float, Field(gt=0, le=300)]


def _check_url(url: str | None) -> str | None:
    """An absolute http(s) URL; the error never repeats the value (it may hold a secret)."""
    if url is None:
        return None
    if not re.match(r"^https?://[^/\s]+", url) or any(c.isspace() for c in url):
        raise ValueError("must be an absolute http:// or https:// URL without spaces")
    return url


def _check_env_name(name: str | None) -> str | None:
    if name is not None and not _ENV_NAME.match(name):
        raise ValueError("must be an environment variable name (letters, digits and '_')")
    return name


def resolve_env(name: str, what: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of environment variable ``name`` (for ``what``), or SettingsError if unset."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise SettingsError(f"{what}: environment variable {name} is not set")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(_Section):
    """``[targets.NAME]``: where an ``http.post`` job may send, by name.

    :param url: the URL, when it holds no secret.
    :param url_env: else the environment variable holding it (exactly one of the two).
    :param headers: header name -> value, sent as they are (no secrets here).
    :param headers_env: header name -> environment variable holding its value.
    :param timeout_seconds: how long one request may take (default 10).
    """

    url: str | None = None
    url_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: Seconds = DEFAULT_TIMEOUT_SECONDS

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, value: str | None) -> str | None:
        return _check_env_name(value)

    @field_validator("headers", "headers_env")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
        return value

    @field_validator("headers_env")
    @classmethod
    def _header_envs(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            if not _ENV_NAME.match(env):
                raise ValueError(f"{header}: must name an environment variable (letters, digits and '_')")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> TargetConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("needs exactly one of url or url_env")
        both = sorted({h.lower() for h in self.headers} & {h.lower() for h in self.headers_env})
        if both:
            raise ValueError(f"header {both[0]} is in both headers and headers_env")
        return self

    def resolved_url(self, what: str, environ: Mapping[str, str] | None = None) -> str:
        """The URL (from ``url_env`` if so configured); SettingsError naming ``what`` if unset."""
        if self.url is not None:
            return self.url
        return _check_resolved(resolve_env(str(self.url_env), f"{what}.url_env", environ), f"{what}.url_env")

    def resolved_headers(self, what: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``headers`` plus ``headers_env`` read from the environment (SettingsError if one is unset)."""
        found = dict(self.headers)
        for header, env in self.headers_env.items():
            found[header] = resolve_env(env, f"{what}.headers_env.{header}", environ)
        return found


class WebhookConfig(_Section):
    """``[[webhooks]]``: a receiver of notifications.

    :param name: how logs name it (never by its URL, which may hold a token); unique.
    :param format: the body: ``json`` (every field), ``slack`` (``text``), ``discord``
        (``content``), ``telegram`` (``chat_id`` and ``text`` to the Bot API).
    :param url / url_env: where to POST (exactly one; not for telegram).
    :param bot_token_env: telegram: the environment variable holding the bot's token.
    :param chat_id: telegram: the chat to write to.
    :param api_base: telegram: the Bot API server (default https://api.telegram.org).
    :param events: the events it gets (default: all; see ``notifications.EVENTS``).
    :param timeout_seconds: how long one POST may take (default 10).
    """

    name: str
    format: WebhookFormat
    url: str | None = None
    url_env: str | None = None
    bot_token_env: str | None = None
    chat_id: str | None = None
    api_base: str | None = None
    events: tuple[str, ...] | None = None
    timeout_seconds: Seconds = DEFAULT_TIMEOUT_SECONDS

    @field_validator("url", "api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("url_env", "bot_token_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _check_env_name(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(_NAME_RULE)
        return value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a numeric chat id may be written without quotes
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name at least one event (leave it out for all of them)")
        for event in value:
            if event not in EVENTS:
                raise ValueError(f"unknown event {event!r} (known: {', '.join(EVENTS)})")
        return value

    @model_validator(mode="after")
    def _format_keys(self) -> WebhookConfig:
        if self.format == "telegram":
            if self.url is not None or self.url_env is not None:
                raise ValueError("a telegram webhook takes bot_token_env and chat_id, not url or url_env")
            if self.bot_token_env is None or self.chat_id is None:
                raise ValueError("a telegram webhook needs bot_token_env and chat_id")
            return self
        extra = [key for key in ("bot_token_env", "chat_id", "api_base") if getattr(self, key) is not None]
        if extra:
            raise ValueError(f"{extra[0]} is only for a telegram webhook")
        if (self.url is None) == (self.url_env is None):
            raise ValueError("needs exactly one of url or url_env")
        return self

    def wants(self, event: str) -> bool:
        """Whether this webhook gets ``event``."""
        return self.events is None or event in self.events

    def resolved_url(self, environ: Mapping[str, str] | None = None) -> str:
        """Where to POST (read from the environment if so configured); SettingsError if unset."""
        what = f"webhooks {self.name}"
        if self.format == "telegram":
            token = resolve_env(str(self.bot_token_env), f"{what}.bot_token_env", environ)
            if not re.fullmatch(r"[A-Za-z0-9:_-]+", token):
                raise SettingsError(f"{what}.bot_token_env: {self.bot_token_env} does not hold a bot token")
            return f"{(self.api_base or TELEGRAM_API).rstrip('/')}/bot{token}/sendMessage"
        if self.url is not None:
            return self.url
        return _check_resolved(resolve_env(str(self.url_env), f"{what}.url_env", environ), f"{what}.url_env")


def _check_resolved(url: str, what: str) -> str:
    try:
        return str(_check_url(url))
    except ValueError as exc:
        raise SettingsError(f"{what}: the variable's value {exc}") from None


class SchedulerConfig(_Section):
    """The whole file: ``targets`` by name and the ``webhooks`` list."""

    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    webhooks: tuple[WebhookConfig, ...] = ()

    @field_validator("targets")
    @classmethod
    def _target_names(cls, value: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"target name {name!r}: {_NAME_RULE}")
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
        seen: set[str] = set()
        for hook in value:
            if hook.name in seen:
                raise ValueError(f"two webhooks are named {hook.name!r}")
            seen.add(hook.name)
        return value


def load_scheduler_config(path: Path | str) -> SchedulerConfig:
    """The config in the TOML file at ``path``; empty if there is no such file.

    Raises SettingsError, one line naming the file, the key and the rule, when the file
    cannot be read, is not TOML, or breaks a rule.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SchedulerConfig()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"{path}: cannot read the scheduler config ({reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    try:
        return SchedulerConfig.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(f"{path}: {_first_problem(exc)}") from None


_RULES = {
    "extra_forbidden": "unknown key",
    "missing": "is required",
    "string_type": "must be a string",
    "dict_type": "must be a table",
    "tuple_type": "must be a list",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def _first_problem(exc: ValidationError) -> str:
    """``key: rule`` of the first problem (``webhooks[0].url``), and how many more there are."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    key = ""
    for part in first["loc"]:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    rule = _RULES.get(first["type"]) or first["msg"].removeprefix("Value error, ")
    if first["type"] in ("greater_than", "less_than_equal", "float_parsing", "float_type"):
        rule = "must be a number of seconds above 0 and at most 300"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key or 'the file'}: {rule[:1].lower() + rule[1:]}{more}"
