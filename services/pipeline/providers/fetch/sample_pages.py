"""Draw manga pages of several panels each, with gutters, and know where every panel is.

A layout is a tree, the way a page is read: ``("rows", [(weight, child), ...])`` stacks its
children top to bottom, ``("cols", [...])`` sets them side by side (listed left to right
on the page), and ``("panel", inset)`` is one panel, ``inset`` being ``None`` or the
``(x0, y0, x1, y1)`` share of the panel that a smaller framed panel covers, drawn over it
with a paper margin. Walking the tree gives the panels in reading order: a row's columns
right to left for Japanese manga (``rtl``), left to right otherwise; an inset after the
panel it sits on.

``draw_page`` paints the panels (the art given, scaled to fill each one, or a textured
stand-in), their black frames (``border=False`` leaves them frameless) and the gutters,
and returns the page with each panel's box in reading order: what the panel detector must
find. The sample chapter uses it for its pages; the panel tests for known layouts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from services.pipeline.panels.boxes import Box
from services.pipeline.panels.order import ReadingDirection

__all__ = ["LAYOUTS", "PAGE_SIZE", "draw_page", "draw_strip", "layout_boxes"]

PAGE_SIZE = (1000, 1400)
PAPER = (250, 250, 247)
FRAME = 4  # frame width in pixels
INSET_MARGIN = 12  # the paper round an inset
_P: tuple[str, Any] = ("panel", None)

LAYOUTS: dict[str, tuple[str, Any]] = {
    "grid": ("rows", [(1, ("cols", [(1, _P), (1, _P)])), (1, ("cols", [(1, _P), (1, _P)])),
                      (1, ("cols", [(1, _P), (1, _P)]))]),
    "wide": ("rows", [(1.2, _P), (1, ("cols", [(1, _P), (1.4, _P)])), (1, ("cols", [(1, _P), (1, _P), (1, _P)])),
                      (0.9, _P)]),
    "tall": ("rows", [(2, ("cols", [(1, ("rows", [(1, _P), (1, _P)])), (1.3, _P)])), (1, _P)]),
    "inset": ("rows", [(2, ("panel", (0.06, 0.5, 0.46, 0.93))), (1, ("cols", [(1, _P), (1, _P)]))]),
    "four": ("rows", [(1, ("cols", [(1, _P), (1, _P)])), (1, ("cols", [(1, _P), (1, _P)]))]),
    "three": ("rows", [(1, _P), (1.2, ("cols", [(1, _P), (1.3, _P)]))]),
    "two": ("rows", [(1, _P), (1, _P)]),
    "one": ("rows", [(1, _P)]),
}
"""The page layouts, by name: ``four`` (2 × 2) is also drawn frameless in the tests."""


def layout_boxes(
    layout: str,
    direction: ReadingDirection = ReadingDirection.RTL,
    *,
    size: tuple[int, int] = PAGE_SIZE,
    margin: int = 40,
    gutter: int = 24,
) -> list[tuple[Box, bool]]:
    """Each panel's box in reading order, and whether it is an inset."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    out: list[tuple[Box, bool]] = []
    _place(LAYOUTS[layout], Box(margin, margin, size[0] - margin, size[1] - margin), gutter, direction, out)
    return out


def draw_page(
    layout: str,
    *,
    arts: Sequence[Image.Image] = (),
    border: bool = True,
    seed: int = 0,
    size: tuple[int, int] = PAGE_SIZE,
    direction: ReadingDirection = ReadingDirection.RTL,
) -> tuple[Image.Image, list[Box]]:
    """The page drawn, and its panels' boxes in reading order (``arts`` fill them in that order)."""
    page = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(page)
    rng = random.Random(seed)
    boxes = layout_boxes(layout, direction, size=size)
    for index, (box, inset) in enumerate(boxes):
        if inset:  # its paper margin over the panel below
            draw.rectangle((box.x0 - INSET_MARGIN, box.y0 - INSET_MARGIN,
                            box.x1 - 1 + INSET_MARGIN, box.y1 - 1 + INSET_MARGIN), fill=PAPER)
        art = arts[index] if index < len(arts) else _texture(box.width, box.height, rng)
        page.paste(ImageOps.fit(art.convert("RGB"), (box.width, box.height)), (box.x0, box.y0))
        if border:
            draw.rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), outline=(12, 12, 12), width=FRAME)
    return page, [box for box, _ in boxes]


def draw_strip(heights: Sequence[int], bands: Sequence[int], *, width: int = 800, seed: int = 0) -> tuple[
        Image.Image, list[Box]]:
    """A webtoon strip: drawings of ``heights`` with blank ``bands`` before, between and after them."""
    if len(bands) != len(heights) + 1:
        raise ValueError("a strip needs one band more than drawings (above, between, below)")
    total = sum(heights) + sum(bands)
    strip = Image.new("RGB", (width, total), PAPER)
    rng = random.Random(seed)
    boxes, top = [], bands[0]
    for height, band in zip(heights, bands[1:]):
        box = Box(60, top, width - 60, top + height)
        strip.paste(_texture(box.width, box.height, rng), (box.x0, box.y0))
        boxes.append(box)
        top += height + band
    return strip, boxes


def _place(node: tuple[str, Any], region: Box, gutter: int, direction: ReadingDirection,
           out: list[tuple[Box, bool]]) -> None:
    kind, body = node
    if kind == "panel":
        out.append((region, False))
        if body is not None:
            fx0, fy0, fx1, fy1 = body
            w, h = region.width, region.height
            out.append((Box(region.x0 + round(fx0 * w), region.y0 + round(fy0 * h),
                            region.x0 + round(fx1 * w), region.y0 + round(fy1 * h)), True))
        return
    vertical = kind == "rows"
    length = region.height if vertical else region.width
    usable = length - gutter * (len(body) - 1)
    total = sum(weight for weight, _ in body)
    spans, start = [], 0
    for index, (weight, _child) in enumerate(body):
        end = length if index == len(body) - 1 else start + round(usable * weight / total)
        spans.append((start, end))
        start = end + gutter
    children = list(zip(spans, (child for _, child in body)))
    if not vertical and direction is ReadingDirection.RTL:
        children.reverse()
    for (start, end), child in children:
        if vertical:
            sub = Box(region.x0, region.y0 + start, region.x1, region.y0 + end)
        else:
            sub = Box(region.x0 + start, region.y0, region.x0 + end, region.y1)
        _place(child, sub, gutter, direction, out)


def _texture(width: int, height: int, rng: random.Random) -> Image.Image:
    """A stand-in drawing that fills its box edge to edge: tones, shapes and lines."""
    base = rng.randrange(110, 190)
    art = Image.new("RGB", (width, height), (base, base - 10, base + 10))
    draw = ImageDraw.Draw(art)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, max(11, min(width, height) // 3))
        tone = rng.randrange(30, 200)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(tone, tone, min(255, tone + 30)))
    for _ in range(8):
        draw.line((rng.randrange(width), rng.randrange(height), rng.randrange(width), rng.randrange(height)),
                  fill=(20, 20, 20), width=3)
    return art.filter(ImageFilter.GaussianBlur(0.6))
