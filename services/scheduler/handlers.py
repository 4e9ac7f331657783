"""HandlerRegistry: the whitelist of job kinds and the coroutine that runs each.

A handler is ``async def handler(job: ScheduledJob) -> dict | None`` (the seed's
post_callback); what it returns becomes the job's ``result``, an exception is a failed
run, ``Reschedule`` puts the job back for a later time without counting a failure, and
``PermanentFailure`` fails it without a retry. A job whose kind is not registered fails with a clear error, it never crashes the
loop. The core ships one kind, ``log``; the pipeline registers its own.

Each kind declares the pydantic model of its payload (a schedule's ``command_payload``,
carried by each job it fires as ``payload``); ``check_payload`` validates one against it
when the schedule is created, so a bad payload is refused then, not at 08:00 next day.
A kind declared without a model takes no payload (``{}`` only).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import JobValidationError
from .models import DEFAULT_MAX_RUNNING_MINUTES, ScheduledJob

__all__ = [
    "EmptyPayload",
    "Handler",
    "HandlerFunc",
    "HandlerRegistry",
    "LogPayload",
    "PermanentFailure",
    "Reschedule",
    "default_registry",
    "log_handler",
]

logger = logging.getLogger(__name__)

HandlerFunc = Callable[[ScheduledJob], Awaitable[dict[str, Any] | None]]


class Reschedule(Exception):
    """Raised by a handler to run the job again at ``when`` (not a failure: no retry spent).

    E.g. a video whose day is already at quota moves to the next day.
    """

    def __init__(self, when: datetime, reason: str) -> None:
        super().__init__(reason)
        self.when = when
        self.reason = reason


class PermanentFailure(Exception):
    """Raised by a handler whose failure another retry cannot fix: the job ends FAILED now.

    E.g. a video whose pipeline already spent its own per-stage retries.
    """


class EmptyPayload(BaseModel):
    """The payload of a kind that takes none: ``{}``."""

    model_config = ConfigDict(extra="forbid")


class LogPayload(BaseModel):
    """The ``log`` kind's payload: ``{"message": str}`` (the line it logs)."""

    model_config = ConfigDict(extra="forbid")

    message: str


@dataclass(frozen=True)
class Handler:
    """A registered kind: its coroutine and how long one run may take."""

    kind: str
    func: HandlerFunc
    max_running_minutes: float = DEFAULT_MAX_RUNNING_MINUTES
    resumable: bool = False
    """The handler checkpoints its progress: after a crash the job runs again at once,
    without spending a retry, and picks up where it was."""
    payload_model: type[BaseModel] = EmptyPayload
    """The pydantic model a payload of this kind must fit."""


class HandlerRegistry:
    """Kinds a job may have, each with its handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(
        self,
        kind: str,
        func: HandlerFunc,
        *,
        max_running_minutes: float = DEFAULT_MAX_RUNNING_MINUTES,
        resumable: bool = False,
        payload_model: type[BaseModel] = EmptyPayload,
    ) -> None:
        """Add ``kind``; ``func`` must be a coroutine function (the loop never blocks).

        ``resumable``: the handler checkpoints and resumes (see ``Handler.resumable``).
        ``payload_model``: what a payload of this kind must be (default: none, ``{}``).
        """
        if not kind or kind != kind.strip():
            raise ValueError(f"invalid kind name: {kind!r}")
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"handler for {kind!r} must be an async function")
        if kind in self._handlers:
            raise ValueError(f"kind already registered: {kind!r}")
        self._handlers[kind] = Handler(kind, func, max_running_minutes, resumable, payload_model)

    def get(self, kind: str) -> Handler | None:
        """The handler of ``kind``, or None if no such kind is registered."""
        return self._handlers.get(kind)

    def check_payload(self, kind: str, payload: Any, *, field: str = "command_payload") -> dict[str, Any]:
        """``payload`` checked against ``kind``'s model, as JSON-ready data.

        Raises JobValidationError naming ``field`` (and the key at fault) and, for an
        unknown kind, the kinds that exist.
        """
        handler = self._handlers.get(kind)
        if handler is None:
            raise JobValidationError("target_command", f"must be one of: {', '.join(self.kinds())} (got {kind!r})")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise JobValidationError(field, f"must be a JSON object, got {type(payload).__name__}")
        try:
            model = handler.payload_model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            name = f"{field}.{where}" if where else field
            rule = first["msg"]
            if first["type"] == "extra_forbidden":
                allowed = ", ".join(handler.payload_model.model_fields) or "none"
                rule = f"unknown key for {kind} (allowed: {allowed})"
            raise JobValidationError(name, rule[:1].lower() + rule[1:]) from None
        return model.model_dump(mode="json", exclude_unset=True)

    def kinds(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._handlers)

    def __contains__(self, kind: object) -> bool:
        return kind in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self.kinds())

    def __len__(self) -> int:
        return len(self._handlers)


async def log_handler(job: ScheduledJob) -> dict[str, Any]:
    """The built-in ``log`` kind: log the payload's message (or the content) and succeed."""
    payload = getattr(job, "payload", None) or {}
    text = payload.get("message") if isinstance(payload, dict) else None
    text = job.content if not isinstance(text, str) else text
    logger.info("log job: %s", text, extra={"job_id": job.job_id, "account_id": job.account_id})
    return {"logged": True, "characters": len(text)}


def default_registry() -> HandlerRegistry:
    """A registry holding the built-in kinds."""
    registry = HandlerRegistry()
    registry.register("log", log_handler, payload_model=LogPayload)
    return registry
