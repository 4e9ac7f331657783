"""DaemonClient: the CLI's way to send a command to a running daemon's local API.

It speaks the API of ``api.py`` with httpx and turns error bodies back into the typed
errors the CLI maps to exit codes, so a command behaves the same with or without a daemon.
Every path segment it builds is percent-quoted (a job id is checked for its shape before,
but the quoting does not depend on that). A change (create, remove) the daemon does not
answer in time raises OutcomeUnknownError: the daemon may have made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from .errors import (
    DaemonUnavailableError,
    DiskFullError,
    JobConflictError,
    JobNotFoundError,
    JobValidationError,
    OutcomeUnknownError,
    SchedulerError,
    StorageError,
)
from .models import JobPriority, ScheduledJob
from .new_job import NewJob

__all__ = ["DaemonClient"]


class DaemonClient:
    """Client of one daemon.

    :param port: the daemon's API port on 127.0.0.1.
    :param token: the bearer token.
    :param transport: an httpx transport (tests inject one); default: real HTTP.
    """

    def __init__(
        self, port: int, token: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._timeout = timeout

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, *, job_id: str | None = None, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise DaemonUnavailableError(f"daemon API at {self._http.base_url} refused the connection: {exc}") from exc
        except httpx.TimeoutException as exc:
            late = f"the daemon did not answer within {self._timeout:g} s (is it stopped or overloaded?)"
            if method == "GET":
                raise SchedulerError(f"{late}; nothing was changed") from exc
            check = f"check with `show {job_id}`" if job_id else "check with `list`"
            raise OutcomeUnknownError(f"{late}; the outcome is unknown: {check}") from exc
        except httpx.HTTPError as exc:
            raise SchedulerError(f"daemon API request failed: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {"value": body}
        if response.is_success:
            return body
        message = body.get("message") or f"daemon answered HTTP {response.status_code}"
        if response.status_code == 422 and body.get("field"):
            raise JobValidationError(body["field"], message.partition(": ")[2] or message)
        if response.status_code == 422:
            raise JobValidationError("request", message)
        if response.status_code == 404 and job_id is not None:
            raise JobNotFoundError(job_id)
        if response.status_code == 409:
            raise JobConflictError(message)
        if response.status_code == 507:
            raise DiskFullError(message, disk_changed=False)
        if body.get("error") == "storage_error":
            raise StorageError(message)
        raise SchedulerError(message)

    @staticmethod
    def _job_path(job_id: str) -> str:
        return f"/api/v1/jobs/{quote(job_id, safe='')}"

    def add(self, new: NewJob) -> ScheduledJob:
        """POST /api/v1/jobs (with ``job_id`` as the Idempotency-Key, when given)."""
        headers = {} if new.job_id is None else {"Idempotency-Key": new.job_id}
        answer = self._call("POST", "/api/v1/jobs", job_id=new.job_id, json=new.to_body(), headers=headers)
        answer.pop("warnings", None)
        return ScheduledJob.model_validate(answer)

    def add_job(
        self,
        account_id: Any,
        content: Any,
        scheduled_time: datetime | None = None,
        priority: Any = JobPriority.NORMAL,
        max_retries: Any = 3,
        *,
        kind: Any = None,
        job_id: str | None = None,
    ) -> ScheduledJob:
        """``add`` with the fields as arguments (see ``NewJob``); ``kind`` None: the daemon's default."""
        return self.add(NewJob(
            account_id=account_id, content=content, scheduled_time=scheduled_time,
            priority=priority, max_retries=max_retries, kind=kind, job_id=job_id,
        ))

    def list_jobs(self, account_id: str | None = None, status: str | None = None) -> list[ScheduledJob]:
        """GET /api/v1/jobs."""
        params = {k: v for k, v in (("account_id", account_id), ("status", status)) if v is not None}
        body = self._call("GET", "/api/v1/jobs", params=params)
        return [ScheduledJob.model_validate(job) for job in body["jobs"]]

    def get_job(self, job_id: str) -> ScheduledJob:
        """GET /api/v1/jobs/{id}."""
        return ScheduledJob.model_validate(self._call("GET", self._job_path(job_id), job_id=job_id))

    def remove_job(self, job_id: str) -> ScheduledJob:
        """DELETE /api/v1/jobs/{id}."""
        body = self._call("DELETE", self._job_path(job_id), job_id=job_id)
        return ScheduledJob.model_validate(body["job"])
