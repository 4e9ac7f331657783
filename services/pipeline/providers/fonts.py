"""The font the renderer and the sample drawings use: Be Vietnam Pro, from its PyPI package.

Depending on a packaged font (not whatever the server has) makes a bare server render the
same Vietnamese subtitles as a desktop.
"""

from __future__ import annotations

from pathlib import Path

import fontpkg_be_vietnam_pro
from PIL import ImageDraw, ImageFont

__all__ = ["font_path", "wrap_text"]


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
