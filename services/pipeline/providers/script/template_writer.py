"""The embedded script writer (SCRIPT_WRITER=template, or auto without an LLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.script import script_template
from services.pipeline.workspace import Workspace

__all__ = ["TemplateWriter"]


class TemplateWriter:
    """A ScriptWriter: deterministic Vietnamese narration, one segment per panel."""

    name: ClassVar[str] = "template"

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        if settings.script_writer == "template":
            return "template (SCRIPT_WRITER=template)"
        return "template (OPENAI_API_KEY not set)"

    def write(self, source: dict[str, Any], work: Workspace) -> tuple[dict[str, Any], list[str]]:
        script = script_template.narrate(source["title"], source["panels"], source.get("lines", {}))
        script["writer"] = "template"
        return script, []
