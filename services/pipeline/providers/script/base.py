"""ScriptWriter: a chapter's Vietnamese narration (the GenerateScript stage's backend).

``write(source, work)`` takes the fetched chapter (``source.json``: title, panels in
reading order, known lines) and the video's workspace (its panels), and returns the
script (``{"title", "description", "tags", "segments": [{"panel", "panels", "text"}]}``)
and the warnings worth keeping on the job (an LLM answer that did not validate, so the
template stood in).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from services.pipeline.workspace import Workspace

__all__ = ["ScriptWriter"]


class ScriptWriter(Protocol):
    name: ClassVar[str]

    @classmethod
    def describe(cls, settings: Any) -> str: ...

    def write(self, source: dict[str, Any], work: Workspace) -> tuple[dict[str, Any], list[str]]: ...
