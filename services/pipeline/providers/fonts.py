"""The font the renderer and the sample drawings use: Be Vietnam Pro, from its PyPI package.

Depending on a packaged font (not whatever the server has) makes a bare server render the
same Vietnamese subtitles as a desktop. ``displayable`` checks a subtitle against the
font's character map before it is drawn: an LLM may write emoji or other scripts, and a
character without a glyph would show as a box.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import fontpkg_be_vietnam_pro
from fontTools.ttLib import TTFont
from PIL import ImageDraw, ImageFont

__all__ = ["covered_characters", "displayable", "font_path", "wrap_text"]


def font_path(weight: str = "Regular") -> Path:
    """The TTF file of Be Vietnam Pro at ``weight`` (Regular, Medium, SemiBold, Bold, ...)."""
    path = Path(fontpkg_be_vietnam_pro.__file__).parent / "files" / f"BeVietnamPro-{weight}.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"font not found: {path} (reinstall fontpkg-be-vietnam-pro)")
    return path


def wrap_text(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, max_width: int
) -> list[str]:
    """``text`` broken into lines at spaces so that each fits ``max_width`` pixels."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


_SUBSTITUTES = {
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2026": "...",
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " ", "\u3000": " ",
    "\u3001": ",", "\u3002": ".", "\uff01": "!", "\uff1f": "?", "\uff0c": ",", "\uff1a": ":",
}  # fmt: skip
"""Stand-ins for punctuation a font may lack (typographic quotes, CJK punctuation)."""


@functools.lru_cache(maxsize=8)
def covered_characters(weight: str = "SemiBold") -> frozenset[int]:
    """The code points Be Vietnam Pro at ``weight`` has a glyph for (its cmap)."""
    with TTFont(str(font_path(weight)), lazy=True) as font:
        return frozenset(font.getBestCmap())


def displayable(text: str, weight: str = "SemiBold") -> tuple[str, str]:
    """``text`` as the font can draw it, and the characters it had to drop.

    The text is NFC-normalised first (Vietnamese written with combining marks becomes the
    precomposed letters the font has); a character the font lacks is replaced by a close
    stand-in it has (typographic quotes, dashes, the NFKC form of a full-width letter) or
    dropped (emoji, other scripts), so a subtitle never shows a missing-glyph box. Runs of
    white space become one space.
    """
    covered = covered_characters(weight)
    kept: list[str] = []
    dropped: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if ord(char) in covered:
            kept.append(char)
            continue
        if char.isspace():
            kept.append(" ")
            continue
        stand_in = _SUBSTITUTES.get(char) or unicodedata.normalize("NFKC", char)
        if stand_in != char and all(ord(c) in covered for c in stand_in):
            kept.append(stand_in)
            continue
        if unicodedata.category(char) not in ("Mn", "Cf", "Cc") and char not in dropped:
            dropped.append(char)  # an invisible joiner or variation selector is no loss
    return " ".join("".join(kept).split()), "".join(dropped)
