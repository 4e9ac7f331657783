"""scriptgen (GenerateScript): the narration of a fetched chapter.

Input ``{"job_id"}``; output ``{"job_id", "script_generated": true, "segment_count": N}``
(stage-functions.md). The script goes to ``work/<job_id>/script.json``.

The writer follows the settings of the video's account (``settings.py``): an
OpenAI-compatible LLM (``providers/script/llm_writer.py``) when one is configured, else
the deterministic Vietnamese template (one segment per panel): the backend
``providers/registry.py`` names for SCRIPT_WRITER (a ``providers/script/base.ScriptWriter``). When the LLM's answer does not
validate twice, the template stands in and the warning goes to the video's job record
(``warnings``) and the log. The per-series memory the LLM keeps (glossary of names,
chapter summaries) lives in ``DATA_DIR/series/<manga_id>/``.
"""

from __future__ import annotations

import logging
from typing import Any

from services.pipeline.providers.registry import backend
from services.pipeline.workspace import Workspace

__all__ = ["handler"]

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GenerateScript: the seed's scriptgen JSON out."""
    job_id = str(event["job_id"])
    work = Workspace(context.data_dir, job_id)
    source = work.read("source.json")
    settings = context.settings_for(str(source.get("account_id") or "default"))
    script, warnings = backend("script", settings, context.data_dir).write(source, work)
    for warning in warnings:
        logger.warning(warning, extra={"job_id": job_id, "stage": "GenerateScript"})
    if warnings:
        context.update_job(job_id, {"warnings": warnings})
    work.write("script.json", script)
    return {"job_id": job_id, "script_generated": True, "segment_count": len(script["segments"])}
