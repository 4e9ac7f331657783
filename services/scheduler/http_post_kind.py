"""The built-in ``http.post`` job kind: a schedule drives another service over HTTP.

The seed's scheduler routed each fire as a command to another service; here a schedule
with ``target_command: "http.post"`` POSTs to a *target* named in the scheduler config's
allow-list (``[targets.NAME]`` in SCHEDULER_CONFIG: its URL, or the environment variable
holding it, and headers). The payload names the target, never a URL, so nobody who can
create a schedule can make the daemon call an address the operator did not list::

    {"target": "analytics", "body": {"metrics": ["sales"]}}

The request's JSON body is ``{"schedule_id", "execution_id", "fire_time", "payload": body}``.
A 2xx answer is a completed run (its status and the first 500 characters of its body are
the job's result); a 5xx, a 408/429 or a network failure is a failed run that the job's
retries try again; another 4xx fails for good (a retry would get the same answer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .handlers import HandlerRegistry, PermanentFailure
from .models import ScheduledJob
from .scheduler_config import TargetConfig

__all__ = ["HTTP_POST_KIND", "HttpPostKind"]

logger = logging.getLogger(__name__)

HTTP_POST_KIND = "http.post"
_RETRYABLE = frozenset({408, 425, 429})


class HttpPostKind:
    """The ``http.post`` kind over the allow-listed ``targets``.

    :param targets: target name -> its config (the ``[targets]`` of the scheduler config).
    :param transport: an httpx transport (tests); default: the network.
    :param environ: where ``url_env`` / ``headers_env`` are read (default os.environ).
    """

    def __init__(
        self,
        targets: Mapping[str, TargetConfig],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.targets = dict(targets)
        self._transport = transport
        self._environ = environ
        names = sorted(self.targets)

        class HttpPostPayload(BaseModel):
            """``{"target": <a configured target>, "body": {...}}``."""

            model_config = ConfigDict(extra="forbid")

            target: str = Field(description=f"one of the configured targets: {', '.join(names) or 'none'}")
            body: dict[str, Any] = Field(default_factory=dict)

            @field_validator("target")
            @classmethod
            def _known(cls, value: str) -> str:
                if value not in names:
                    allowed = ", ".join(names) if names else "none are configured ([targets.NAME] in SCHEDULER_CONFIG)"
                    raise ValueError(f"must be a configured target: {allowed} (got {value!r})")
                return value

        self.payload_model = HttpPostPayload

    def register(self, registry: HandlerRegistry) -> None:
        """Add the kind to ``registry`` (nothing if it is there already)."""
        if HTTP_POST_KIND not in registry:
            registry.register(HTTP_POST_KIND, self.run, max_running_minutes=5, payload_model=self.payload_model)

    async def run(self, job: ScheduledJob) -> dict[str, Any]:
        """POST the job's payload body to its target; raise on a failed answer."""
        extra = job.__pydantic_extra__ or {}
        payload = self.payload_model.model_validate(extra.get("payload") or {})
        target = self.targets[payload.target]
        what = f"targets.{payload.target}"
        url = target.resolved_url(what, self._environ)
        headers = target.resolved_headers(what, self._environ)
        body = {
            "schedule_id": extra.get("schedule_id"),
            "execution_id": job.job_id,
            "fire_time": extra.get("fire_time"),
            "payload": payload.body,
        }
        log = {"job_id": job.job_id, "kind": HTTP_POST_KIND, "target": payload.target}
        async with httpx.AsyncClient(transport=self._transport, timeout=target.timeout_seconds) as client:
            try:
                answer = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ConnectionError(f"target {payload.target}: {type(exc).__name__} (will retry)") from None
        if answer.is_success:
            logger.info("http.post delivered", extra={**log, "status": answer.status_code})
            return {"target": payload.target, "status": answer.status_code, "body": answer.text[:500]}
        message = f"target {payload.target} answered HTTP {answer.status_code}"
        if answer.status_code >= 500 or answer.status_code in _RETRYABLE:
            raise ConnectionError(message + " (will retry)")
        raise PermanentFailure(message + " (a retry would get the same answer; check the target and the payload)")
