"""Find the panels of a manga page, or cut a webtoon strip into screen-sized pieces.

Classical image analysis, no model. A page is printed on paper whose colour the page's
outer edge gives; "ink" is every pixel far from it. Panels are separated by gutters:
bands of paper that cross the whole region between them. So the page is cut recursively
(an XY-cut): first into rows at the horizontal gutters, top to bottom, then each row into
columns at the vertical gutters (right to left for manga, left to right otherwise), and
so on until a region has no gutter left: that region, trimmed to its ink, is a panel. A
cut only ever runs through paper, so no drawing is cut through. An inset (a small framed
panel drawn over a larger one, with its own paper margin) is found inside a panel as a
filled rectangle ringed with paper, and read after the panel it sits on.

A page that does not split cleanly stays whole: when a cut would leave a sliver (a caption
or a sound effect between panels), that gutter is not used; when the page's edge is not
plain light paper (a full-bleed splash page, a picture framed to its edge, black
gutters), or the cuts give more than ``MAX_PANELS``, the page is one panel.

A strip (height at least ``STRIP_RATIO`` times its width) is cut at its blank bands into
pieces about ``PIECE_RATIO`` times as tall as they are wide (one portrait screen), never
through a drawing: a drawing taller than that stays one piece.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.pipeline.panels.boxes import Box
from services.pipeline.panels.order import ReadingDirection

__all__ = ["MAX_PANELS", "PIECE_RATIO", "STRIP_RATIO", "find_panels", "is_strip", "panels_of", "split_strip"]

INK_DIFF = 40  # grey levels from the paper's colour that make a pixel ink
EDGE_PAPER_SHARE = 0.85  # the share of the page's edge that must be paper for gutters to mean anything
PAPER_MIN = 128  # paper is light: a dark edge (a frame drawn to the edge, black gutters) keeps the page whole
NOISE_SHARE = 0.004  # ink pixels a gutter line may hold (JPEG specks, dust), per pixel of its length
MIN_GUTTER_SHARE = 0.006  # a gutter is at least this share of the page's shorter side (and 4 px)
MIN_PANEL_SHARE = 0.015  # a panel covers at least this share of the page
MIN_PANEL_SIDE_SHARE = 0.06  # and each side is at least this share of the page's side
MAX_PANELS = 16
INSET_MIN_SHARE = 0.03  # an inset covers at least this share of the page
INSET_MAX_SHARE = 0.6  # and at most this share of the panel it sits on
INSET_RING = 6  # the paper margin round an inset that is checked, in pixels (at least a gutter's width)
STRIP_RATIO = 2.5
PIECE_RATIO = 16 / 9


def panels_of(path: Path, direction: ReadingDirection = ReadingDirection.RTL) -> list[Box]:
    """The panels of the image at ``path`` in reading order (see ``find_panels``)."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError(f"cannot read an image from {path}")
    return find_panels(gray, direction)


def is_strip(width: int, height: int) -> bool:
    """A webtoon strip: read top to bottom, cut at blank bands rather than into panels."""
    return height >= STRIP_RATIO * width


def find_panels(gray: np.ndarray, direction: ReadingDirection = ReadingDirection.RTL) -> list[Box]:
    """The panels of a page (a 2-D uint8 array) in reading order; a strip's pieces top to bottom.

    Always at least one box: a page with nothing to split is one panel (the whole page if
    it has no plain-paper edge, else its ink).
    """
    height, width = gray.shape[:2]
    if is_strip(width, height):
        return split_strip(gray)
    whole = Box(0, 0, width, height)
    ink = _ink(gray)
    if ink is None:
        return [whole]
    page = _Page(ink, direction)
    found: list[Box] = []
    page.cut(0, 0, width, height, found)
    if not found:
        return [whole]
    if len(found) > MAX_PANELS:
        return [page.trim(0, 0, width, height) or whole]
    with_insets: list[Box] = []
    for box in found:
        with_insets.append(box)
        with_insets.extend(page.insets(box))
    return with_insets


def split_strip(gray: np.ndarray) -> list[Box]:
    """A tall strip's pieces, top to bottom, each about ``PIECE_RATIO`` × its width tall.

    Cuts fall in the middle of blank bands: the one nearest the ideal height among those
    that give a piece between half and 1.6 times it, else the first blank band after
    that (a long drawing stays whole), else none.
    """
    height, width = gray.shape[:2]
    ink = _ink(gray)
    if ink is None:
        return [Box(0, 0, width, height)]
    rows = ink.sum(axis=1)
    gaps = _gaps(rows, _noise(width), _min_gutter(width, height))
    cuts = [(start + end) // 2 for start, end in gaps]
    target = PIECE_RATIO * width
    pieces: list[tuple[int, int]] = []
    top = 0
    while True:
        fits = [c for c in cuts if top + 0.5 * target <= c <= top + 1.6 * target]
        later = [c for c in cuts if c > top + 1.6 * target]
        if height - top <= 1.6 * target or not (fits or later):
            pieces.append((top, height))
            break
        cut = min(fits, key=lambda c: abs(c - top - target)) if fits else later[0]
        pieces.append((top, cut))
        top = cut
    page = _Page(ink, ReadingDirection.LTR)
    boxes = [page.trim(0, start, width, end) for start, end in pieces]
    return [box for box in boxes if box is not None] or [Box(0, 0, width, height)]


def _ink(gray: np.ndarray) -> np.ndarray | None:
    """Where the page is drawn on, or None if its edge is not plain paper (a splash page)."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    margin = max(2, min(height, width) // 100)
    edge = np.concatenate([gray[:margin].ravel(), gray[-margin:].ravel(),
                           gray[:, :margin].ravel(), gray[:, -margin:].ravel()])
    paper = int(np.median(edge))
    if paper < PAPER_MIN or np.mean(np.abs(edge.astype(np.int16) - paper) <= INK_DIFF) < EDGE_PAPER_SHARE:
        return None
    return np.abs(gray.astype(np.int16) - paper) > INK_DIFF


def _noise(length: int) -> int:
    return max(1, int(NOISE_SHARE * length))


def _min_gutter(width: int, height: int) -> int:
    return max(4, round(MIN_GUTTER_SHARE * min(width, height)))


def _gaps(profile: np.ndarray, limit: int, min_run: int) -> list[tuple[int, int]]:
    """Runs ``[start, end)`` of at least ``min_run`` where ``profile`` is at most ``limit``."""
    empty = np.concatenate(([False], profile <= limit, [False])).astype(np.int8)
    steps = np.diff(empty)
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_run]


class _Page:
    """One page's ink mask and the recursive cut over it."""

    def __init__(self, ink: np.ndarray, direction: ReadingDirection) -> None:
        self.ink = ink
        self.direction = direction
        height, width = ink.shape
        self.height, self.width = height, width
        self.min_gutter = _min_gutter(width, height)
        self.min_area = MIN_PANEL_SHARE * width * height
        self.min_w, self.min_h = MIN_PANEL_SIDE_SHARE * width, MIN_PANEL_SIDE_SHARE * height

    def trim(self, x0: int, y0: int, x1: int, y1: int) -> Box | None:
        """The region shrunk to its ink (None if it holds none beyond noise)."""
        sub = self.ink[y0:y1, x0:x1]
        rows = np.flatnonzero(sub.sum(axis=1) > _noise(x1 - x0))
        cols = np.flatnonzero(sub.sum(axis=0) > _noise(y1 - y0))
        if not len(rows) or not len(cols):
            return None
        return Box(x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)

    def cut(self, x0: int, y0: int, x1: int, y1: int, out: list[Box]) -> None:
        box = self.trim(x0, y0, x1, y1)
        if box is None:
            return
        sub = self.ink[box.y0:box.y1, box.x0:box.x1]
        for axis in (0, 1):  # rows first (a horizontal gutter), then columns
            profile = sub.sum(axis=1 - axis)
            across = box.width if axis == 0 else box.height
            parts = self._parts(_gaps(profile, _noise(across), self.min_gutter), len(profile), axis, box)
            if len(parts) < 2:
                continue
            if axis == 1 and self.direction is ReadingDirection.RTL:
                parts.reverse()
            for start, end in parts:
                if axis == 0:
                    self.cut(box.x0, box.y0 + start, box.x1, box.y0 + end, out)
                else:
                    self.cut(box.x0 + start, box.y0, box.x0 + end, box.y1, out)
            return
        out.append(box)

    def _parts(self, gaps: list[tuple[int, int]], length: int, axis: int, box: Box) -> list[tuple[int, int]]:
        """The spans between the gaps, a gap dropped wherever it would leave a sliver."""
        gaps = list(gaps)
        while True:
            edges = [0, *(edge for gap in gaps for edge in gap), length]
            parts = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
            small = [i for i, part in enumerate(parts) if self._sliver(part, axis, box)]
            if not small or not gaps:
                return parts
            i = small[0]  # merge it across its narrower neighbouring gap
            left = gaps[i - 1] if i > 0 else None
            right = gaps[i] if i < len(gaps) else None
            if left is None or (right is not None and right[1] - right[0] < left[1] - left[0]):
                gaps.remove(right)  # type: ignore[arg-type]
            else:
                gaps.remove(left)

    def _sliver(self, part: tuple[int, int], axis: int, box: Box) -> bool:
        span = part[1] - part[0]
        if axis == 0:
            return span < self.min_h or span * box.width < self.min_area
        return span < self.min_w or span * box.height < self.min_area

    def insets(self, panel: Box) -> list[Box]:
        """Framed panels drawn inside ``panel`` with a paper margin round them, in reading order."""
        sub = self.ink[panel.y0:panel.y1, panel.x0:panel.x1].astype(np.uint8)
        contours, _ = cv2.findContours(sub, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found: list[Box] = []
        ring = max(INSET_RING, self.min_gutter)
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            area = w * h
            if area < INSET_MIN_SHARE * self.width * self.height or area > INSET_MAX_SHARE * panel.area:
                continue
            if x <= ring or y <= ring or x + w >= panel.width - ring or y + h >= panel.height - ring:
                continue  # it touches the panel's own frame
            if cv2.contourArea(contour) < 0.95 * area:
                continue  # not a filled rectangle
            around = sub[y - ring:y + h + ring, x - ring:x + w + ring].astype(bool)
            margin_ink = around.sum() - sub[y:y + h, x:x + w].astype(bool).sum()
            margin_size = around.size - area
            if margin_ink > 0.15 * margin_size:
                continue  # no paper round it: part of the drawing
            box = Box(panel.x0 + x, panel.y0 + y, panel.x0 + x + w, panel.y0 + y + h)
            if not any(other.contains(box) or box.contains(other) for other in found):
                found.append(box)
        rtl = self.direction is ReadingDirection.RTL
        return sorted(found, key=lambda b: (b.y0, -b.x1 if rtl else b.x0))
