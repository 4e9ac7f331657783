"""The schedules and executions routes of the HTTP API (paths as the seed's service has them).

Thin shells over ``ScheduleService`` (``schedules.py``): parse, call one method, answer.
Errors are the API's one JSON shape (``api.py``): 401 without the token, 404 an unknown
id, 409 a conflict (a taken name), 422 a bad body or query, 429 a creator over
MAX_SCHEDULES_PER_CREATOR. Who made a change comes from ``X-Created-By`` (create),
``X-Triggered-By`` (trigger, backfill) or ``X-Performed-By`` (every other change), and is
recorded in the audit trail and the execution history (default ``api``). A change is
answered once it is on disk, its audit line included.

| method and path | answer |
| --- | --- |
| POST /api/v1/schedules | 201, the schedule |
| GET /api/v1/schedules?tag=&status=&created_by=&schedule_type=&limit=&offset= | 200, a page |
| GET /api/v1/schedules/{id} | 200, the schedule |
| PUT /api/v1/schedules/{id} | 200, the schedule (fields given replace the stored ones) |
| DELETE /api/v1/schedules/{id} | 200, ``{"deleted": id, "schedule": …}`` |
| POST /api/v1/schedules/{id}/pause, /resume | 200, the schedule (body ``{"reason": …}`` optional) |
| POST /api/v1/schedules/{id}/trigger | 202, the execution and its job (runs now, paused or not) |
| POST /api/v1/schedules/{id}/backfill | 200, the fires of ``{"start", "end"}`` added |
| POST /api/v1/schedules/bulk/create | 200, one result per schedule |
| POST /api/v1/schedules/bulk/operation | 200, one result per id (pause / resume / delete) |
| GET /api/v1/executions?schedule_id=&status=&limit=&offset= | 200, newest fire first |
| GET /api/v1/executions/running | 200, the runs in progress |
| GET /api/v1/executions/{id} | 200, one execution |
| GET /api/v1/schedules/{id}/executions | 200, one schedule's executions |
| GET /api/v1/executions/stats/{schedule_id}?days= | 200, counts, success rate, p50/p95 |
"""

from __future__ import annotations

import enum
import os
import shutil
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .actor import acting_as
from .api_models import error_responses
from .atomic_file import mount_point
from .clock import local_date
from .errors import ExecutionNotFoundError
from .lock import read_holder
from .schedule_model import Coalesce, ScheduleSpec, ScheduleStatus, ScheduleType, ScheduleUpdate
from .schedules import BULK_OPERATIONS, EXECUTION_STATUSES

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["schedule_router"]

MAX_PAGE = 500
MAX_BULK = 500


class ScheduleOut(BaseModel):
    """A schedule as answers give it: its record, defaults filled in, and what is computed."""

    model_config = ConfigDict(extra="allow")

    schedule_id: str
    name: str
    description: str | None = None
    schedule_type: ScheduleType
    cron_expression: str | None = None
    interval_seconds: int | None = None
    run_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    timezone: str
    target_command: str
    command_payload: dict[str, Any]
    tags: list[str]
    priority: int
    max_retries: int
    retry_delay_seconds: int
    account_id: str | None = None
    misfire_grace_time: int
    coalesce: Coalesce
    max_instances: int
    pause_after_failures: int | None = None
    paused: bool
    paused_reason: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_fire_time: datetime | None = None
    next_run_time: datetime | None = Field(description="The next fire, aware ISO-8601 in the schedule's zone; null when paused or finished.")
    status: ScheduleStatus
    running_instances: int
    waiting_instances: int


class SchedulePage(BaseModel):
    schedules: list[ScheduleOut]
    count: int
    total: int
    limit: int
    offset: int


class Deleted(BaseModel):
    deleted: str
    schedule: ScheduleOut


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class ExecutionOut(BaseModel):
    """One run of a schedule (or a fire that did not run: misfired, skipped)."""

    model_config = ConfigDict(extra="allow")

    execution_id: str
    schedule_id: str | None = None
    status: str
    fire_time: str | None = None


class Triggered(BaseModel):
    execution_id: str
    job: dict[str, Any]
    schedule: ScheduleOut


class ExecutionPage(BaseModel):
    executions: list[ExecutionOut]
    count: int
    has_more: bool
    limit: int
    offset: int


class RunningPage(BaseModel):
    executions: list[ExecutionOut]
    count: int


class Backfill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class BulkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedules: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BULK)


BulkOperationName = enum.Enum(  # type: ignore[misc]
    "BulkOperationName", {name.upper(): name for name in BULK_OPERATIONS}, type=str
)
"""What a bulk operation does (``schedules.BULK_OPERATIONS``)."""


class BulkOperationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule_ids: list[str] = Field(min_length=1, max_length=MAX_BULK)
    operation: BulkOperationName
    reason: str | None = Field(default=None, max_length=500)


ExecutionStatus = enum.Enum(  # type: ignore[misc]
    "ExecutionStatus", {name.upper(): name for name in EXECUTION_STATUSES}, type=str
)
"""The statuses an execution can have (``schedules.EXECUTION_STATUSES``)."""


def schedule_router(scheduler: Scheduler, auth: list[Any]) -> APIRouter:
    """The ``/api/v1/schedules`` and ``/api/v1/executions`` routes over ``scheduler.schedules``."""
    router = APIRouter(dependencies=auth, tags=["schedules"])
    service = scheduler.schedules

    async def durable() -> None:  # this request's audit lines are on disk
        await scheduler.audit.flush(own=True)

    def one(schedule_id: str) -> dict[str, Any]:
        return service.describe(service.get(schedule_id))

    @router.post("/api/v1/schedules", status_code=201, response_model=ScheduleOut, responses=error_responses(404, 409, 429))
    async def create_schedule(
        spec: ScheduleSpec, x_created_by: str | None = Header(default=None, max_length=200)
    ) -> JSONResponse:
        with acting_as(x_created_by or "api") as who:
            schedule = await service.create(spec, created_by=who)
        await durable()
        return JSONResponse(service.describe(schedule), status_code=201)

    @router.get("/api/v1/schedules", response_model=SchedulePage, responses=error_responses())
    async def list_schedules(
        tag: str | None = Query(default=None, max_length=50),
        status: ScheduleStatus | None = None,
        created_by: str | None = Query(default=None, max_length=64),
        schedule_type: ScheduleType | None = None,
        name: str | None = Query(default=None, max_length=200),
        limit: int = Query(default=50, ge=1, le=MAX_PAGE),
        offset: int = Query(default=0, ge=0, le=10_000_000),
    ) -> JSONResponse:
        found, total = service.list(
            tag=tag, status=status.value if status else None, created_by=created_by,
            schedule_type=schedule_type.value if schedule_type else None, name=name, limit=limit, offset=offset,
        )
        page = [service.describe(s) for s in found]
        # a JSONResponse: FastAPI would validate 100 answers against the model again (5 ms)
        return JSONResponse({"schedules": page, "count": len(page), "total": total, "limit": limit, "offset": offset})

    @router.post("/api/v1/schedules/bulk/create", responses=error_responses())
    async def bulk_create(
        body: BulkCreate, x_created_by: str | None = Header(default=None, max_length=200)
    ) -> dict[str, Any]:
        with acting_as(x_created_by or "api") as who:
            results = await service.create_many(body.schedules, created_by=who)
        await durable()
        created = sum(1 for r in results if r["ok"])
        return {"created": created, "failed": len(results) - created, "results": results}

    @router.post("/api/v1/schedules/bulk/operation", responses=error_responses())
    async def bulk_operation(
        body: BulkOperationBody, x_performed_by: str | None = Header(default=None, max_length=200)
    ) -> dict[str, Any]:
        with acting_as(x_performed_by or "api"):
            answer = await service.bulk_operation(body.schedule_ids, body.operation.value, body.reason)
        await durable()
        return answer

    @router.get("/api/v1/schedules/{schedule_id}", response_model=ScheduleOut, responses=error_responses(404))
    async def get_schedule(schedule_id: str) -> dict[str, Any]:
        return one(schedule_id)

    @router.put("/api/v1/schedules/{schedule_id}", response_model=ScheduleOut, responses=error_responses(404, 409))
    async def update_schedule(
        schedule_id: str, changes: ScheduleUpdate, x_performed_by: str | None = Header(default=None, max_length=200)
    ) -> dict[str, Any]:
        with acting_as(x_performed_by or "api"):
            schedule = await service.update(schedule_id, changes)
        await durable()
        return service.describe(schedule)

    @router.delete("/api/v1/schedules/{schedule_id}", response_model=Deleted, responses=error_responses(404))
    async def delete_schedule(
        schedule_id: str, x_performed_by: str | None = Header(default=None, max_length=200)
    ) -> dict[str, Any]:
        with acting_as(x_performed_by or "api"):
            schedule = await service.delete(schedule_id)
        await durable()
        return {"deleted": schedule_id, "schedule": service.describe(schedule)}

    @router.post("/api/v1/schedules/{schedule_id}/pause", response_model=ScheduleOut, responses=error_responses(404))
    async def pause_schedule(
        schedule_id: str,
        body: Reason | None = Body(default=None),
        x_performed_by: str | None = Header(default=None, max_length=200),
    ) -> dict[str, Any]:
        with acting_as(x_performed_by or "api"):
            schedule = await service.pause(schedule_id, body.reason if body else None)
        await durable()
        return service.describe(schedule)

    @router.post("/api/v1/schedules/{schedule_id}/resume", response_model=ScheduleOut, responses=error_responses(404))
    async def resume_schedule(
        schedule_id: str,
        body: Reason | None = Body(default=None),
        x_performed_by: str | None = Header(default=None, max_length=200),
    ) -> dict[str, Any]:
        with acting_as(x_performed_by or "api"):
            schedule = await service.resume(schedule_id, body.reason if body else None)
        await durable()
        return service.describe(schedule)

    @router.post("/api/v1/schedules/{schedule_id}/trigger", status_code=202, response_model=Triggered,
                 responses=error_responses(404, 409))
    async def trigger_schedule(
        schedule_id: str, x_triggered_by: str | None = Header(default=None, max_length=200)
    ) -> JSONResponse:
        with acting_as(x_triggered_by or "api") as who:
            job = await service.trigger(schedule_id, triggered_by=who)
        await durable()
        body = {"execution_id": job.job_id, "job": job.to_dict(), "schedule": one(schedule_id)}
        return JSONResponse(body, status_code=202)

    @router.post("/api/v1/schedules/{schedule_id}/backfill", responses=error_responses(404))
    async def backfill_schedule(
        schedule_id: str, body: Backfill, x_triggered_by: str | None = Header(default=None, max_length=200)
    ) -> dict[str, Any]:
        with acting_as(x_triggered_by or "api") as who:
            answer = await service.backfill(schedule_id, body.start, body.end, triggered_by=who)
        await durable()
        return answer

    @router.get("/api/v1/schedules/{schedule_id}/executions", response_model=ExecutionPage, responses=error_responses(404))
    async def schedule_executions(
        schedule_id: str,
        status: ExecutionStatus | None = None,
        limit: int = Query(default=50, ge=1, le=MAX_PAGE),
        offset: int = Query(default=0, ge=0, le=1_000_000),
    ) -> dict[str, Any]:
        service.get(schedule_id)
        return _executions(schedule_id, status, limit, offset)

    def _executions(schedule_id: str | None, status: ExecutionStatus | None, limit: int, offset: int) -> dict[str, Any]:
        records, more = service.history.list(
            schedule_id=schedule_id, status=status.value if status else None, limit=limit, offset=offset
        )
        return {"executions": records, "count": len(records), "has_more": more, "limit": limit, "offset": offset}

    @router.get("/api/v1/executions", response_model=ExecutionPage, responses=error_responses())
    async def list_executions(
        schedule_id: str | None = Query(default=None, max_length=64),
        status: ExecutionStatus | None = None,
        limit: int = Query(default=50, ge=1, le=MAX_PAGE),
        offset: int = Query(default=0, ge=0, le=1_000_000),
    ) -> dict[str, Any]:
        return _executions(schedule_id, status, limit, offset)

    @router.get("/api/v1/executions/running", response_model=RunningPage, responses=error_responses())
    async def running_executions() -> dict[str, Any]:
        found = service.running()
        return {"executions": found, "count": len(found)}

    @router.get("/api/v1/executions/stats/{schedule_id}", responses=error_responses(404))
    async def execution_stats(schedule_id: str, days: int = Query(default=30, ge=1, le=366)) -> dict[str, Any]:
        schedule = service.get(schedule_id)
        today = local_date(scheduler.clock(), service._zone(schedule))
        return service.history.stats(schedule_id, today=today, days=days)

    @router.get("/health/detailed", responses=error_responses())
    async def health_detailed() -> dict[str, Any]:
        """Each part's state: storage, lock, loops, next fire, disk, and the extensions' checks."""
        holder = read_holder(scheduler.data_dir) or {}
        usage = shutil.disk_usage(mount_point(scheduler.data_dir))  # the data dir may not exist yet
        nxt = service.next_due()
        failure = scheduler.storage.write_failure
        checks: dict[str, Any] = {}
        for name, check in getattr(scheduler, "health_checks", {}).items():
            try:
                checks[name] = check()
            except Exception as exc:  # a check that fails is a finding, not a 500
                checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        parts = {
            "storage": {"ok": failure is None, "writable": failure is None, "error": failure},
            "history": {"ok": service.history.write_failure is None, "error": service.history.write_failure},
            "lock": {"ok": holder.get("pid") == os.getpid(), "holder_pid": holder.get("pid"), "role": holder.get("role")},
            "dispatch_loop": {"ok": scheduler.is_ready, "state": scheduler.state.value},
            "schedule_loop": {"ok": service.alive},
            "next_fire": {"ok": True, "at": None if nxt is None else nxt[0].isoformat(),
                          "schedule_id": None if nxt is None else nxt[1]},
            "disk": {"ok": usage.free > 200 * 1024 * 1024, "free_bytes": usage.free, "total_bytes": usage.total},
            "backends": {"ok": all(c.get("ok", True) for c in checks.values() if isinstance(c, dict)), "checks": checks},
        }
        ok = all(part["ok"] for part in parts.values())
        return {"status": "ok" if ok else "degraded", "parts": parts}

    @router.get("/api/v1/executions/{execution_id}", response_model=ExecutionOut, responses=error_responses(404))
    async def get_execution(execution_id: str) -> dict[str, Any]:
        record = service.history.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(execution_id)
        return record

    return router
