"""The daemon's local HTTP API (FastAPI), served by uvicorn inside the daemon's loop.

Every route is a thin shell: parse, call one Scheduler method, map typed errors to HTTP
statuses. Every error, whatever raised it (a typed error, an unknown path, a wrong
method, a body that is not JSON, an unexpected failure), answers with one JSON shape::

    {"error": "<code>", "message": "<one line>"[, "field": "<name>"]}

Routes are ``async def`` so they run on the loop thread, the one thread that changes
jobs; the ones that write await the storage's writer thread, so a request never blocks
the loop.

| method and path | answer |
| --- | --- |
| POST /api/v1/jobs | 201, the new job (200 and the same job for a repeated create) |
| GET /api/v1/jobs?account_id=&status= | 200, ``{"jobs": [...], "count": n}`` |
| GET /api/v1/jobs/{id} | 200, the job; 404 |
| DELETE /api/v1/jobs/{id} | 200, ``{"deleted": id, "job": {...}}``; 404; 409 if running |
| GET /health, /ready, /live | status probes (no token needed) |

A create may name its job: ``job_id`` in the body, or an ``Idempotency-Key`` header (the
job's id is then derived from the key). Sent again (a client retrying after a timeout),
it answers 200 with the job the first one made, header ``Idempotent-Replayed: true``;
the same id with other fields is 409. The body must be a JSON object sent as
``Content-Type: application/json``, at most MAX_BODY_BYTES and MAX_BODY_DEPTH deep. A
create due more than 24 h ago is stored but will expire: the answer carries
``"warnings": [...]``. A full disk answers 507 (``disk_full``), nothing changed.

``/api/v1/*`` needs ``Authorization: Bearer <token>`` (the token file in the data dir).
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api_schedules import schedule_router
from .clock import parse_instant
from .errors import JobValidationError, SchedulerError
from .models import JobPriority, check_job_id, schedule_warnings
from .new_job import NewJob
from .scheduler import Scheduler

__all__ = ["IDEMPOTENCY_NAMESPACE", "JOB_FIELDS", "MAX_BODY_BYTES", "MAX_BODY_DEPTH", "create_app"]

logger = logging.getLogger(__name__)

JOB_FIELDS = frozenset(NewJob.model_fields)
"""The keys a create's body may have: the fields of ``NewJob``."""
MAX_BODY_BYTES = 64 * 1024
MAX_BODY_DEPTH = 8
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0c4a55-3f77-4d1e-9a8e-2f1b6f0c9d21")
"""The job id of a create sent with ``Idempotency-Key: K`` is ``uuid5(IDEMPOTENCY_NAMESPACE, K)``."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


class _Unauthorized(Exception):
    pass


class _BadBody(JobValidationError):
    """The request's body is not a JSON object (code ``invalid_request``, field ``body``)."""

    code = "invalid_request"

    def __init__(self, rule: str) -> None:
        super().__init__("body", rule)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers or None)


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object; JobValidationError("body", ...) if it is not one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        shown = f"Content-Type {kind!r}" if kind else "no Content-Type"
        raise _BadBody(f"must be JSON sent as Content-Type: application/json (got {shown})")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _BadBody(f"must be at most {MAX_BODY_BYTES} bytes (got {len(raw)})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadBody(f"is not valid UTF-8 (byte {exc.start})") from None
    # the depth is checked before parsing, so a deeply nested body cannot exhaust the stack
    if text.count("[") + text.count("{") > MAX_BODY_DEPTH and not _shallow(text):
        raise _BadBody(f"nests deeper than {MAX_BODY_DEPTH} levels")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadBody(f"is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    if not isinstance(body, dict):
        raise _BadBody(f"must be a JSON object, got {type(body).__name__}")
    return body


def _shallow(text: str) -> bool:
    """Whether brackets outside strings never open more than MAX_BODY_DEPTH deep (no parse)."""
    level, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level > MAX_BODY_DEPTH:
                return False
        elif char in "]}":
            level -= 1
    return True


def create_app(scheduler: Scheduler, token: str) -> FastAPI:
    """The API app over ``scheduler``, guarded by ``token``."""
    app = FastAPI(title="video-scheduler", docs_url=None, redoc_url=None)

    async def require_token(authorization: str | None = Header(default=None)) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), token):
            raise _Unauthorized

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        body = {"error": "unauthorized", "message": "missing or wrong bearer token (see DATA_DIR/api_token)"}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(SchedulerError)
    async def _scheduler_error(request: Request, exc: SchedulerError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        body = {"error": "invalid_request", "message": f"{where}: {first.get('msg', 'invalid request')}"}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no such path: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, code, message, **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("API request failed", extra={"path": request.url.path})
        return _error(500, "internal_error", f"the daemon failed on this request: {type(exc).__name__}: {exc}")

    auth = [Depends(require_token)]

    @app.post("/api/v1/jobs", status_code=201, dependencies=auth)
    async def add_job(
        request: Request, idempotency_key: str | None = Header(default=None, alias="Idempotency-Key")
    ) -> JSONResponse:
        body = await _json_object(request)
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            raise JobValidationError(unknown[0], f"unknown field (allowed: {', '.join(sorted(JOB_FIELDS))})")
        job_id = body.get("job_id")
        if job_id is None and idempotency_key:
            job_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key))
        if job_id is not None:
            check_job_id(job_id)
        when = body.get("scheduled_time")
        if when is not None:
            if not isinstance(when, str):
                raise JobValidationError("scheduled_time", "must be an ISO-8601 string")
            try:
                when = parse_instant(when, scheduler.zone, now=scheduler.clock())
            except ValueError as exc:
                raise JobValidationError("scheduled_time", str(exc)) from None
        new = NewJob(
            account_id=body.get("account_id"),
            content=body.get("content"),
            scheduled_time=when,
            priority=body.get("priority", JobPriority.NORMAL),
            max_retries=body.get("max_retries", 3),
            kind=body.get("kind"),  # None: the scheduler's default kind
            job_id=job_id,
        )
        repeat = job_id is not None and job_id in scheduler.manager.jobs
        job = await scheduler.add_async(new)
        answer = job.to_dict()
        warnings = schedule_warnings(job, scheduler.clock())
        if warnings:
            answer["warnings"] = warnings
        if repeat:
            return JSONResponse(answer, status_code=200, headers={"Idempotent-Replayed": "true"})
        return JSONResponse(answer, status_code=201)

    @app.get("/api/v1/jobs", dependencies=auth)
    async def list_jobs(account_id: str | None = None, status: str | None = None) -> dict[str, Any]:
        jobs = [job.to_dict() for job in scheduler.list_jobs(account_id, status)]
        return {"jobs": jobs, "count": len(jobs)}

    @app.get("/api/v1/jobs/{job_id}", dependencies=auth)
    async def get_job(job_id: str) -> dict[str, Any]:
        return scheduler.get_job(check_job_id(job_id)).to_dict()

    @app.delete("/api/v1/jobs/{job_id}", dependencies=auth)
    async def remove_job(job_id: str) -> dict[str, Any]:
        job = await scheduler.remove_job_async(check_job_id(job_id))
        return {"deleted": job_id, "job": job.to_dict()}

    app.include_router(schedule_router(scheduler, auth))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        failure = scheduler.storage.write_failure
        return {
            "status": "ok" if scheduler.is_ready and failure is None else "degraded",
            "state": scheduler.state.value,
            "storage": "ok" if failure is None else f"cannot write: {failure}",
            "jobs": len(scheduler.manager.jobs),
            "running": sorted(scheduler.executor.running_job_ids),
            "by_status": scheduler.counts_by_status(),
        }

    @app.get("/ready")
    async def ready() -> JSONResponse:
        ok = scheduler.is_ready
        return JSONResponse({"ready": ok, "state": scheduler.state.value}, status_code=200 if ok else 503)

    @app.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    return app
