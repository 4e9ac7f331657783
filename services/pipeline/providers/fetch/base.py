"""FetchSource: where a chapter's pages come from (the FetchManga stage's backend).

``take(request, account_id, work)`` reserves a chapter for the video ``work.job_id``
(``request``: ``next``, a title or a source id), puts its pages in ``work.panels`` (in
reading order, ``panel-001.png`` ...) and returns what the stage writes to
``source.json``; None when no chapter is left. A video asking again gets the chapter it
already took (a retried fetch). Both sources, local and MangaDex, answer the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from services.pipeline.workspace import Workspace

__all__ = ["FetchSource"]


class FetchSource(Protocol):
    name: ClassVar[str]
    new_chapters_appear: ClassVar[bool]
    """Whether new chapters come by themselves (MangaDex): no chapter today is then normal,
    and the video looks again the next morning instead of failing."""

    @classmethod
    def describe(cls, settings: Any) -> str: ...

    def take(self, request: str, account_id: str, work: Workspace) -> dict[str, Any] | None: ...
