"""Where a video's files live while it is made: ``DATA_DIR/work/<job_id>/``.

::

    work/<job_id>/pages/page-001.png ...     the chapter's pages, as fetched (fetch)
    work/<job_id>/panels/panel-001.png ...   each page's panels, cut out, in reading order (fetch)
    work/<job_id>/panels.json                where each panel is on its page, and the direction (fetch)
    work/<job_id>/source.json                manga, chapter, credits, lines (fetch)
    work/<job_id>/script.json                narration segments, title, tags (script)
    work/<job_id>/audio/seg-001.wav ...      one narration file per segment (tts)
    work/<job_id>/speech.json                each segment's file, length and engine (tts)
    work/<job_id>/video.mp4                  the rendered video (render)
    work/<job_id>/shorts.mp4                 its Shorts cut: the opening in 9:16 (render, SHORTS_CUT)

Cleanup removes the whole folder once the video is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.scheduler.atomic_file import write_atomic

__all__ = ["Workspace"]


@dataclass(frozen=True)
class Workspace:
    """The folder of one video job."""

    data_dir: Path
    job_id: str

    def __post_init__(self) -> None:
        if not self.job_id or not all(c.isalnum() or c in "-_" for c in self.job_id):
            raise ValueError(f"not a job id usable as a folder name: {self.job_id!r}")

    @property
    def root(self) -> Path:
        return self.data_dir / "work" / self.job_id

    @property
    def panels(self) -> Path:
        return self.root / "panels"

    @property
    def audio(self) -> Path:
        return self.root / "audio"

    @property
    def video(self) -> Path:
        return self.root / "video.mp4"

    @property
    def shorts(self) -> Path:
        return self.root / "shorts.mp4"

    def read(self, name: str) -> dict[str, Any]:
        """A JSON file of the workspace (FileNotFoundError names the stage that makes it)."""
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: the stage that writes it has not run for {self.job_id}"
            )
        return json.loads(path.read_text(encoding="utf-8"))

    def write(self, name: str, value: dict[str, Any]) -> Path:
        """Write a JSON file of the workspace atomically, Vietnamese left readable."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
        return path
