"""scriptgen (GenerateScript): the narration of a fetched chapter.

Input ``{"job_id"}``; output ``{"job_id", "script_generated": true, "segment_count": N}``
(stage-functions.md). The script goes to ``work/<job_id>/script.json``. The embedded
writer is the deterministic Vietnamese template (one segment per panel).
"""

from __future__ import annotations

from typing import Any

from .providers import script_template
from .workspace import Workspace, data_dir_from_env

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GenerateScript: the seed's scriptgen JSON out."""
    job_id = str(event["job_id"])
    work = Workspace(data_dir_from_env(), job_id)
    source = work.read("source.json")
    script = script_template.narrate(source["title"], source["panels"], source.get("lines", {}))
    script["writer"] = "template"
    work.write("script.json", script)
    return {"job_id": job_id, "script_generated": True, "segment_count": len(script["segments"])}
