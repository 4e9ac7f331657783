"""The embedded script writer: deterministic Vietnamese narration, one segment per panel.

It narrates what the chapter's metadata knows: the first segment introduces the chapter,
each panel's segment says who speaks and what (from ``chapter.json``), and a panel with
no recorded line gets a neutral sentence. The same chapter always gives the same script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["narrate"]


def narrate(title: str, panels: Sequence[str], lines: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The script of a chapter: title, description, tags and one segment per panel.

    :param title: the chapter's title (Vietnamese).
    :param panels: panel file names in reading order.
    :param lines: per panel file name, its ``{"speaker", "text"}`` if known.
    """
    if not panels:
        raise ValueError("a chapter without panels cannot be narrated")
    segments = []
    for index, panel in enumerate(panels):
        line = lines.get(panel) or {}
        speaker, said = str(line.get("speaker") or "").strip(), str(line.get("text") or "").strip()
        if speaker and said:
            text = f"{speaker} nói: {said}"
        elif said:
            text = said
        else:
            text = f"Khung tranh thứ {index + 1} tiếp tục câu chuyện."
        if index == 0:
            text = f"Chào mừng các bạn đến với {title}. {text}"
        if index == len(panels) - 1:
            text = f"{text} Cảm ơn các bạn đã theo dõi, hẹn gặp lại ở chương sau!"
        segments.append({"panel": panel, "text": text})
    return {
        "title": title,
        "description": f"Tóm tắt và kể lại {title} bằng tiếng Việt.",
        "tags": ["truyện tranh", "review truyện", "tóm tắt truyện", "manga"],
        "segments": segments,
    }
