"""Which way a chapter is read, decided from its source's metadata (pure).

Japanese manga read right to left, top to bottom; most other comics left to right; a
webtoon strip (Korean manhwa, Chinese manhua in strip form) top to bottom, which the
detector handles by the strip's shape. MangaDex gives a manga's ``originalLanguage``
(``ja``, ``ko``, ``zh``, ``en``, ...); a local chapter's ``manga.json`` may carry
``reading_direction`` (``rtl`` / ``ltr``) or ``original_language``. An account setting
(``reading_direction``) overrides both.
"""

from __future__ import annotations

import enum

__all__ = ["ReadingDirection", "direction_for"]


class ReadingDirection(str, enum.Enum):
    """The order of the panels across a row: right to left (manga) or left to right."""

    RTL = "rtl"
    LTR = "ltr"

    @classmethod
    def parse(cls, value: str) -> ReadingDirection:
        text = value.strip().lower()
        aliases = {"rtl": cls.RTL, "right-to-left": cls.RTL, "manga": cls.RTL,
                   "ltr": cls.LTR, "left-to-right": cls.LTR, "comic": cls.LTR}
        if text not in aliases:
            raise ValueError(f"reading direction must be rtl or ltr, got {value!r}")
        return aliases[text]


_RIGHT_TO_LEFT = frozenset({"ja", "ja-ro"})


def direction_for(
    original_language: str | None = None,
    *,
    declared: str | None = None,
    override: str | None = None,
) -> ReadingDirection:
    """The reading direction: the account's ``override``, else the chapter's ``declared``
    direction, else right to left for a Japanese original, else left to right.

    Raises ValueError for a direction that is neither rtl nor ltr.
    """
    for given in (override, declared):
        if given:
            return ReadingDirection.parse(given)
    language = (original_language or "").strip().lower()
    return ReadingDirection.RTL if language in _RIGHT_TO_LEFT else ReadingDirection.LTR
