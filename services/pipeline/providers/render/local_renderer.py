"""The renderer: this machine's bundled ffmpeg and PyAV (``render_local.render_video``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.workspace import Workspace

__all__ = ["LocalRenderer"]


class LocalRenderer:
    """A Renderer at the size VIDEO_FORMAT names (see ``tasks/render_task.py``)."""

    name: ClassVar[str] = "local"

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        return "local worker, bundled ffmpeg (imageio-ffmpeg) + PyAV"

    def render(self, work: Workspace) -> dict[str, Any]:
        from services.pipeline.tasks.render_task import render  # the workspace's glue

        return render(work, self.settings)
