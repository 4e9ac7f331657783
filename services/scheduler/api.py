"""The daemon's local HTTP API (FastAPI), served by uvicorn inside the daemon's loop.

Every route is a thin shell: parse, call one Scheduler method, map typed errors to HTTP
statuses with a JSON body ``{"error": code, "message": text[, "field": name]}``. Routes
are ``async def`` so they run on the loop thread, the one thread that changes jobs; the
ones that write await the storage's writer thread, so a request never blocks the loop.

| method and path | answer |
| --- | --- |
| POST /api/v1/jobs | 201, the new job |
| GET /api/v1/jobs?account_id=&status= | 200, ``{"jobs": [...], "count": n}`` |
| GET /api/v1/jobs/{id} | 200, the job; 404 |
| DELETE /api/v1/jobs/{id} | 200, ``{"deleted": id, "job": {...}}``; 404; 409 if running |
| GET /health, /ready, /live | status probes (no token needed) |

``/api/v1/*`` needs ``Authorization: Bearer <token>`` (the token file in the data dir).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .clock import parse_instant
from .errors import JobValidationError, SchedulerError
from .scheduler import Scheduler

__all__ = ["JOB_FIELDS", "create_app"]

JOB_FIELDS = frozenset({"account_id", "content", "scheduled_time", "priority", "max_retries", "kind"})


class _Unauthorized(Exception):
    pass


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

    auth = [Depends(require_token)]

    @app.post("/api/v1/jobs", status_code=201, dependencies=auth)
    async def add_job(body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            raise JobValidationError(unknown[0], f"unknown field (allowed: {', '.join(sorted(JOB_FIELDS))})")
        when = body.get("scheduled_time")
        if when is not None:
            if not isinstance(when, str):
                raise JobValidationError("scheduled_time", "must be an ISO-8601 string")
            try:
                when = parse_instant(when, scheduler.zone, now=scheduler.clock())
            except ValueError as exc:
                raise JobValidationError("scheduled_time", str(exc)) from None
        job = await scheduler.add_job_async(
            body.get("account_id"),
            body.get("content"),
            when,
            body.get("priority", 2),
            body.get("max_retries", 3),
            kind=body.get("kind"),  # None: the scheduler's default kind
        )
        return job.to_dict()

    @app.get("/api/v1/jobs", dependencies=auth)
    async def list_jobs(account_id: str | None = None, status: str | None = None) -> dict[str, Any]:
        jobs = [job.to_dict() for job in scheduler.list_jobs(account_id, status)]
        return {"jobs": jobs, "count": len(jobs)}

    @app.get("/api/v1/jobs/{job_id}", dependencies=auth)
    async def get_job(job_id: str) -> dict[str, Any]:
        return scheduler.get_job(job_id).to_dict()

    @app.delete("/api/v1/jobs/{job_id}", dependencies=auth)
    async def remove_job(job_id: str) -> dict[str, Any]:
        job = await scheduler.remove_job_async(job_id)
        return {"deleted": job_id, "job": job.to_dict()}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok" if scheduler.is_ready else "degraded",
            "state": scheduler.state.value,
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
