"""The LLM script writer (SCRIPT_WRITER=openai, or auto with a key or a server).

The key is handed over by the settings (``settings.openai_key()``: OPENAI_API_KEY or the
0600 file OPENAI_API_KEY_FILE names); the per-series memory (glossary of names, chapter
summaries) lives in ``DATA_DIR/series/<manga_id>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.script import script_llm
from services.pipeline.workspace import Workspace

__all__ = ["LLMWriter", "llm_config", "series_dir"]


def series_dir(data_dir: Path, manga_id: str) -> Path:
    """Where one series' glossary and summaries live."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in manga_id) or "unknown"
    return data_dir / "series" / safe


def llm_config(settings: Any) -> script_llm.LLMConfig:
    """The LLM writer's configuration from the settings (the key as the settings hand it)."""
    key = settings.openai_key()
    return script_llm.LLMConfig(
        model=settings.openai_model,
        # None: a local server gets a placeholder key, OpenAI itself a clear LLMAuthError
        api_key=key.get_secret_value() if key is not None else None,
        base_url=settings.openai_base_url,
        vision=settings.llm_sees_panels(),
        images_per_request=settings.openai_images_per_request,
        timeout_seconds=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )


class LLMWriter:
    """A ScriptWriter over any OpenAI-compatible server (``script_llm.write_script``)."""

    name: ClassVar[str] = "openai"

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.config = llm_config(settings)
        self.data_dir = data_dir

    @classmethod
    def describe(cls, settings: Any) -> str:
        where = settings.openai_base_url or "https://api.openai.com/v1 (the SDK's default)"
        sees = "panels as images" if settings.llm_sees_panels() else "text only (OPENAI_VISION off)"
        return f"openai at {where}, model {settings.openai_model}, {sees}"

    def write(self, source: dict[str, Any], work: Workspace) -> tuple[dict[str, Any], list[str]]:
        series = series_dir(self.data_dir, str(source.get("manga_id") or ""))
        result = script_llm.write_script(
            self.config,
            panels_dir=work.panels,
            source=source,
            glossary_path=series / "glossary.json",
            summary_path=series / "summaries.json",
            job_id=work.job_id,
        )
        return dict(result.script), list(result.warnings)
