"""DaemonClient: the CLI's way to send a command to a running daemon's local API.

It speaks the API of ``api.py`` with httpx and turns error bodies back into the typed
errors the CLI maps to exit codes, so a command behaves the same with or without a daemon.
Every path segment it builds is percent-quoted (a job id is checked for its shape before,
but the quoting does not depend on that). A change (create, remove) the daemon does not
answer in time raises OutcomeUnknownError: the daemon may have made it.

The schedule calls (``create_schedule`` ... ``execution_stats``) speak the routes of
``api_schedules.py`` and answer with their JSON bodies as they are (a schedule as
``ScheduleService.describe`` gives it, a page, a stats object); the CLI's direct mode
(``cli_schedules.DirectSchedules``) answers with the same shapes. ``actor`` goes out as
the route's ``X-Created-By`` / ``X-Performed-By`` / ``X-Triggered-By`` header.
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
    ScheduleConflictError,
    ScheduleNotFoundError,
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

    def _call(
        self,
        method: str,
        path: str,
        *,
        job_id: str | None = None,
        schedule_id: str | None = None,
        check: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request; its JSON body, or the typed error its error body names.

        ``job_id`` / ``schedule_id``: what the request is about (a 404 is then that thing
        not found). ``check``: the command to name when a change's outcome is unknown.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise DaemonUnavailableError(f"daemon API at {self._http.base_url} refused the connection: {exc}") from exc
        except httpx.TimeoutException as exc:
            late = f"the daemon did not answer within {self._timeout:g} s (is it stopped or overloaded?)"
            if method == "GET":
                raise SchedulerError(f"{late}; nothing was changed") from exc
            if check is None:
                check = f"show {job_id}" if job_id else "list"
            raise OutcomeUnknownError(f"{late}; the outcome is unknown: check with `{check}`") from exc
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
        if response.status_code == 404 and schedule_id is not None:
            raise ScheduleNotFoundError(schedule_id)
        if response.status_code == 404 and job_id is not None:
            raise JobNotFoundError(job_id)
        if response.status_code == 409 and schedule_id is not None:
            raise ScheduleConflictError(message)
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

    # -- schedules (api_schedules.py) -------------------------------------------------------

    @staticmethod
    def _schedule_path(schedule_id: str, action: str = "") -> str:
        return f"/api/v1/schedules/{quote(schedule_id, safe='')}{action}"

    def create_schedule(self, spec: dict[str, Any], actor: str) -> dict[str, Any]:
        """POST /api/v1/schedules (``spec``: a ScheduleSpec body); the new schedule."""
        name = spec.get("name", "")
        try:
            return self._call("POST", "/api/v1/schedules", json=spec, headers={"X-Created-By": actor},
                              check=f"schedule show {name!r}" if name else "schedule list")
        except JobConflictError as exc:  # a taken name
            raise ScheduleConflictError(exc.message) from None

    def list_schedules(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        created_by: str | None = None,
        schedule_type: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """GET /api/v1/schedules: ``{"schedules": [...], "count", "total", "limit", "offset"}``."""
        given = {"tag": tag, "status": status, "created_by": created_by, "schedule_type": schedule_type,
                 "name": name, "limit": limit, "offset": offset}
        return self._call("GET", "/api/v1/schedules", params={k: v for k, v in given.items() if v is not None})

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """GET /api/v1/schedules/{id}."""
        return self._call("GET", self._schedule_path(schedule_id), schedule_id=schedule_id)

    def _change(
        self, method: str, schedule_id: str, action: str, header: str, actor: str, *, check: str = "", **kwargs: Any
    ) -> Any:
        return self._call(method, self._schedule_path(schedule_id, action), schedule_id=schedule_id,
                          headers={header: actor}, check=check or f"schedule show {schedule_id}", **kwargs)

    def update_schedule(self, schedule_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        """PUT /api/v1/schedules/{id} (``changes``: a ScheduleUpdate body); the schedule."""
        return self._change("PUT", schedule_id, "", "X-Performed-By", actor, json=changes)

    def delete_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]:
        """DELETE /api/v1/schedules/{id}: ``{"deleted": id, "schedule": …}``."""
        return self._change("DELETE", schedule_id, "", "X-Performed-By", actor)

    def pause_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        """POST /api/v1/schedules/{id}/pause; the schedule."""
        return self._change("POST", schedule_id, "/pause", "X-Performed-By", actor, json={"reason": reason})

    def resume_schedule(self, schedule_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        """POST /api/v1/schedules/{id}/resume; the schedule."""
        return self._change("POST", schedule_id, "/resume", "X-Performed-By", actor, json={"reason": reason})

    def trigger_schedule(self, schedule_id: str, actor: str) -> dict[str, Any]:
        """POST /api/v1/schedules/{id}/trigger: ``{"execution_id", "job", "schedule"}``."""
        return self._change("POST", schedule_id, "/trigger", "X-Triggered-By", actor,
                            check=f"executions --schedule {schedule_id}")

    def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime, actor: str) -> dict[str, Any]:
        """POST /api/v1/schedules/{id}/backfill: the fires of [start, end] added and found."""
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return self._change("POST", schedule_id, "/backfill", "X-Triggered-By", actor, json=body,
                            check=f"executions --schedule {schedule_id}")

    def list_executions(
        self, *, schedule_id: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """GET /api/v1/executions, newest fire first: ``{"executions": [...], "count", "has_more", …}``."""
        given = {"schedule_id": schedule_id, "status": status, "limit": limit, "offset": offset}
        return self._call("GET", "/api/v1/executions", params={k: v for k, v in given.items() if v is not None})

    def execution_stats(self, schedule_id: str, days: int = 30) -> dict[str, Any]:
        """GET /api/v1/executions/stats/{id}?days=: counts, success rate, p50/p95."""
        path = f"/api/v1/executions/stats/{quote(schedule_id, safe='')}"
        return self._call("GET", path, schedule_id=schedule_id, params={"days": days})
