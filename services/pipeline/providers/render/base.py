"""Renderer: a video's workspace (panels, speech, script) to ``work/<job_id>/video.mp4``.

``render(work)`` makes the video (or keeps one already made for this job) and returns the
worker's output ``{"job_id", "status": "completed", "video"}``. It runs in the render
worker (``tasks/render_task.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from services.pipeline.workspace import Workspace

__all__ = ["Renderer"]


class Renderer(Protocol):
    name: ClassVar[str]

    @classmethod
    def describe(cls, settings: Any) -> str: ...

    def render(self, work: Workspace) -> dict[str, Any]: ...
