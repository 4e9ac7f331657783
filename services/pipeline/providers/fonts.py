"""The font the renderer and the sample drawings use: Be Vietnam Pro, from its PyPI package.

Depending on a packaged font (not whatever the server has) makes a bare server render the
same Vietnamese subtitles as a desktop.
"""

from __future__ import annotations

from pathlib import Path

import fontpkg_be_vietnam_pro

__all__ = ["font_path"]


def font_path(weight: str = "Regular") -> Path:
    """The TTF file of Be Vietnam Pro at ``weight`` (Regular, Medium, SemiBold, Bold, ...)."""
    path = Path(fontpkg_be_vietnam_pro.__file__).parent / "files" / f"BeVietnamPro-{weight}.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"font not found: {path} (reinstall fontpkg-be-vietnam-pro)")
    return path
