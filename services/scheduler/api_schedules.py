"""The schedules and executions routes of the HTTP API (filled in by the schedules work)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["schedule_router"]


def schedule_router(scheduler: object, auth: list) -> APIRouter:
    """The ``/api/v1/schedules`` and ``/api/v1/executions`` routes (none yet)."""
    return APIRouter(dependencies=auth)
