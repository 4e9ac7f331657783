"""scriptgen (GenerateScript): the narration of a fetched chapter.

Input ``{"job_id"}``; output ``{"job_id", "script_generated": true, "segment_count": N}``
(stage-functions.md). The script goes to ``work/<job_id>/script.json``.

The writer follows the settings of the video's account (``settings.py``): an
OpenAI-compatible LLM (``providers/script_llm.py``) when one is configured, else the
deterministic Vietnamese template (one segment per panel). When the LLM's answer does not
validate twice, the template stands in and the warning goes to the video's job record
(``warnings``) and the log. The per-series memory the LLM keeps (glossary of names,
chapter summaries) lives in ``DATA_DIR/series/<manga_id>/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.pipeline.providers.script import script_template
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

if TYPE_CHECKING:
    from services.pipeline.providers.script.script_llm import LLMConfig

__all__ = ["handler", "llm_config", "series_dir"]

logger = logging.getLogger(__name__)


def series_dir(data_dir: Path, manga_id: str) -> Path:
    """Where one series' glossary and summaries live."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in manga_id) or "unknown"
    return data_dir / "series" / safe


def llm_config(settings: PipelineSettings) -> LLMConfig:
    """The LLM writer's configuration from the settings (the key read from env or its 0600 file)."""
    from services.pipeline.providers.script.script_llm import (
        LLMConfig,  # the openai SDK loads only when it is used
    )

    key = settings.openai_key()
    return LLMConfig(
        model=settings.openai_model,
        # None: a local server gets a placeholder key, OpenAI itself a clear LLMAuthError
        api_key=key.get_secret_value() if key is not None else None,
        base_url=settings.openai_base_url,
        vision=settings.llm_sees_panels(),
        images_per_request=settings.openai_images_per_request,
        timeout_seconds=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GenerateScript: the seed's scriptgen JSON out."""
    job_id = str(event["job_id"])
    data_dir = context.data_dir
    work = Workspace(data_dir, job_id)
    source = work.read("source.json")
    settings = context.settings_for(str(source.get("account_id") or "default"))
    if settings.uses_llm():
        from services.pipeline.providers.script.script_llm import write_script

        series = series_dir(data_dir, str(source.get("manga_id") or ""))
        result = write_script(
            llm_config(settings),
            panels_dir=work.panels,
            source=source,
            glossary_path=series / "glossary.json",
            summary_path=series / "summaries.json",
            job_id=job_id,
        )
        script, warnings = dict(result.script), list(result.warnings)
    else:
        script = script_template.narrate(source["title"], source["panels"], source.get("lines", {}))
        script["writer"], warnings = "template", []
    for warning in warnings:
        logger.warning(warning, extra={"job_id": job_id, "stage": "GenerateScript"})
    if warnings:
        context.update_job(job_id, {"warnings": warnings})
    work.write("script.json", script)
    return {"job_id": job_id, "script_generated": True, "segment_count": len(script["segments"])}
