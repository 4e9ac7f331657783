"""Where a panel and its subtitle go on the frame (pure: sizes in, rectangles out).

A panel is scaled to fill the frame as far as its shape allows: as wide as the frame or
as tall as it, whichever comes first. What it leaves is filled by a blurred, darkened
copy of the panel itself (the compositor's job), never by flat bars.

The subtitle sits at the bottom of the format's safe area: the part of the frame no
player chrome covers (on a Shorts frame YouTube lays the title, the channel and the
buttons over the bottom fifth and the right edge). When the panel's shape leaves room
below it for the subtitle, or leaves it once the panel is shrunk by at most
``MAX_SHRINK``, the panel goes above the subtitle and no line of text covers its speech
bubbles. Otherwise (a tall panel on a landscape frame) the panel keeps its full size
and the subtitle goes over its lower edge, on a translucent band (``Layout.over_panel``).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.pipeline.panels.boxes import Box

__all__ = ["MAX_SHRINK", "SAFE_AREAS", "Layout", "SafeArea", "layout", "safe_box"]

MAX_SHRINK = 0.8  # a panel may be shrunk to this share of its full fit to clear the subtitle
GAP_SHARE = 0.015  # between the panel and the subtitle, a share of the frame's height


@dataclass(frozen=True)
class SafeArea:
    """The safe area as shares of the frame: left, top, right, bottom edges."""

    left: float
    top: float
    right: float
    bottom: float


SAFE_AREAS = {
    # YouTube's players: a 5 % margin all round on a 16:9 frame
    (16, 9): SafeArea(0.05, 0.05, 0.95, 0.95),
    # Shorts: the top 12 % (search, camera), the right 16 % (like, comment, share) and the
    # bottom 22 % (title, channel, description) are covered
    (9, 16): SafeArea(0.06, 0.12, 0.84, 0.78),
}


@dataclass(frozen=True)
class Layout:
    """Where things go: the panel's box on the frame, the subtitle's (None without one),
    and whether the subtitle lies over the panel (then it gets a band behind it)."""

    panel: Box
    caption: Box | None
    over_panel: bool


def safe_box(frame: tuple[int, int]) -> Box:
    """The safe area of a frame of this size, in pixels (16:9 or 9:16 by its shape)."""
    width, height = frame
    area = SAFE_AREAS[(16, 9) if width >= height else (9, 16)]
    return Box(round(area.left * width), round(area.top * height), round(area.right * width),
               round(area.bottom * height))


def layout(panel: tuple[int, int], frame: tuple[int, int], caption_height: int = 0) -> Layout:
    """The layout of a ``panel``-sized picture on a ``frame``-sized frame, with a subtitle
    ``caption_height`` pixels tall (0: none)."""
    pw, ph = panel
    width, height = frame
    if pw <= 0 or ph <= 0:
        raise ValueError(f"a panel has a size, got {panel}")
    full = min(width / pw, height / ph)
    if caption_height <= 0:
        return Layout(_placed(pw * full, ph * full, Box(0, 0, width, height)), None, False)
    safe = safe_box(frame)
    caption_height = min(caption_height, safe.height)
    caption = Box(safe.x0, safe.y1 - caption_height, safe.x1, safe.y1)
    above = Box(0, 0, width, max(1, caption.y0 - round(GAP_SHARE * height)))
    fit_above = min(width / pw, above.height / ph)
    if fit_above >= MAX_SHRINK * full:
        return Layout(_placed(pw * fit_above, ph * fit_above, above), caption, False)
    return Layout(_placed(pw * full, ph * full, Box(0, 0, width, height)), caption, True)


def _placed(w: float, h: float, room: Box) -> Box:
    """A ``w`` × ``h`` box centred in ``room`` (rounded, at least a pixel, inside it)."""
    w, h = max(1, min(room.width, round(w))), max(1, min(room.height, round(h)))
    x0 = room.x0 + (room.width - w) // 2
    y0 = room.y0 + (room.height - h) // 2
    return Box(x0, y0, x0 + w, y0 + h)
