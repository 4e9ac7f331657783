"""StageContext: what a stage handler may use besides its event (the seed's Lambda context).

Stages stay plain functions ``handler(event: dict, context) -> dict``. The machine passes a
context with the clock and a way to change the job record, so a stage neither reads the
wall clock itself nor writes job files behind the scheduler's back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

__all__ = ["StageContext"]


class StageContext(Protocol):
    """The machine's side of a stage call."""

    def now(self) -> datetime:
        """The current instant (aware UTC)."""
        ...

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the job's record and save it durably."""
        ...
