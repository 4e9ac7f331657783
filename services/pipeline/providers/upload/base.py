"""Publisher: where a rendered video goes (the upload worker's backend).

``publish(work, now)`` publishes ``work.video`` with its title, description (with the
credits) and tags, and returns the worker's output ``{"job_id", "youtube_url", "status":
"completed"}`` (for the local publisher the URL is the published file's ``file://``).
Credentials are handed over by the settings (the token file they name), not found by the
publisher.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Protocol

from services.pipeline.workspace import Workspace

__all__ = ["Publisher"]


class Publisher(Protocol):
    name: ClassVar[str]

    @classmethod
    def describe(cls, settings: Any) -> str: ...

    def publish(self, work: Workspace, now: datetime) -> dict[str, Any]: ...
