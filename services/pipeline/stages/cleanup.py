"""cleanup: remove a video's workspace once it is published.

Input ``{"job_id"}``; output ``{"job_id", "objects_deleted": N, "bytes_freed": B}``
(stage-functions.md), counting the files removed from ``DATA_DIR/work/<job_id>/``.
A workspace already gone gives zeros (a retried cleanup).
"""

from __future__ import annotations

import shutil
from typing import Any

from services.pipeline.workspace import Workspace

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Cleanup: the seed's cleanup JSON out."""
    job_id = str(event["job_id"])
    root = Workspace(context.data_dir, job_id).root
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    freed = sum(p.stat().st_size for p in files)
    if root.exists():
        shutil.rmtree(root)
    return {"job_id": job_id, "objects_deleted": len(files), "bytes_freed": freed}
