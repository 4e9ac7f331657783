"""The video's rhythm: which framing of which panel shows when, with which subtitle line (pure).

A recap video cuts where the story moves and never holds one picture long enough to
become a slideshow. The plan, from the narration's timing alone:

- **Panels.** A segment's time is shared equally between its panels: a cut at each.
- **Framings.** A panel on screen for long gets more than one framing, one every
  ``TARGET_SHOT`` seconds or so (16 cuts a minute): the whole panel, then a close view of
  where reading starts (top right in manga, top left otherwise), then of where it ends,
  then of its centre. A close view is the panel enlarged ``CLOSE_ZOOM`` times, widened
  toward the frame's shape where the panel has room. No shot is longer than
  ``MAX_SHOT`` (the gate allows 18 s).
- **Lines.** The subtitle changes at each word-timed cue line (edge-tts); without cues the
  text is paged at the reading pace: a page about every ``PAGE_SECONDS``, broken after
  punctuation where it can be, each page shown for its share of the characters.
- **Still.** Between two changes of the picture (a cut, a new line, the end of a push)
  at most ``MAX_STILL`` seconds pass (the gate calls a picture held over 3 s frozen): where
  a stretch would be longer, the panel gets one more framing, down to ``MIN_FRAMING``.
- **Motion** (``MOTION=push``): each framing opens with a slow push-in, ``PUSH_ZOOM``
  over ``PUSH_SECONDS``, easing out, and holds the pushed view until its next change.
  Moving frames are each encoded, so the push is kept short; the held part costs what a
  still does.

Views are shares of the panel (0..1 across, 0..1 down), so the plan needs only the
panels' sizes, not their pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CLOSE_ZOOM",
    "FULL",
    "MAX_SHOT",
    "MAX_STILL",
    "MIN_FRAMING",
    "MOTIONS",
    "PAGE_SECONDS",
    "PUSH_SECONDS",
    "PUSH_ZOOM",
    "TARGET_SHOT",
    "Beat",
    "Shot",
    "View",
    "close_views",
    "pages_of",
    "plan_shots",
    "pushed",
]

TARGET_SHOT = 3.75  # seconds a framing lasts, about: 16 cuts a minute
MAX_SHOT = 15.0  # no framing longer than this (the gate's limit: 18 s)
MAX_STILL = 2.8  # seconds one picture may be held unchanged (the gate's frozen limit: 3 s)
MIN_FRAMING = 1.6  # a panel is not cut into framings shorter than this
PAGE_SECONDS = 2.4  # a subtitle page about this long when the text is paged
MIN_PAGE_WORDS = 2
CLOSE_ZOOM = 1.4  # a close view enlarges the panel this much
PUSH_ZOOM = 1.05  # a push-in ends this much closer than it starts
PUSH_SECONDS = 0.8  # and lasts this long at the start of each framing
MOTIONS = ("none", "push")


@dataclass(frozen=True)
class View:
    """The part of a panel on screen, as shares of its width and height."""

    x0: float = 0.0
    y0: float = 0.0
    x1: float = 1.0
    y1: float = 1.0

    def box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """This view in the pixels of a panel of ``size`` (for ``Image.resize(box=)``)."""
        return (self.x0 * size[0], self.y0 * size[1], self.x1 * size[0], self.y1 * size[1])

    def pixels(self, size: tuple[int, int]) -> tuple[int, int]:
        """The view's size in the pixels of a panel of ``size`` (at least one each way)."""
        return (max(1, round((self.x1 - self.x0) * size[0])), max(1, round((self.y1 - self.y0) * size[1])))


FULL = View()


@dataclass(frozen=True)
class Shot:
    """What the screen shows for a stretch: a panel's view and a subtitle line.

    ``framing`` numbers the framings of the plan: the shots of one framing share its view
    and its layout (only the line changes). ``push_from``: the view a push-in starts from,
    on the first shot of a framing when MOTION=push (the shot ends on ``view``)."""

    panel: Path
    subtitle: str
    seconds: float
    view: View = FULL
    framing: int = 0
    push_from: View | None = None


@dataclass(frozen=True)
class Beat:
    """One narration segment as the plan sees it: its panels (with their pixel sizes), how
    long it lasts, its cue lines ``(start, end, text)`` and its whole subtitle."""

    panels: tuple[tuple[Path, tuple[int, int]], ...]
    seconds: float
    subtitle: str
    cues: tuple[tuple[float, float, str], ...] = field(default=())


def pages_of(text: str, count: int) -> list[str]:
    """``text`` in at most ``count`` pages of whole words, balanced by length, each broken
    after punctuation where one falls near the break."""
    words = text.split()
    count = max(1, min(count, len(words) // MIN_PAGE_WORDS or 1))
    if count == 1:
        return [" ".join(words)] if words else []
    target = len(" ".join(words)) / count
    pages: list[list[str]] = [[]]
    for n, word in enumerate(words):
        pages[-1].append(word)
        length = len(" ".join(pages[-1]))
        left_words, left_pages = len(words) - n - 1, count - len(pages)
        if not left_pages or left_words < MIN_PAGE_WORDS:
            continue
        punctuated = re.search(r"[.,;:!?…]$", word) is not None
        if (length >= target or (punctuated and length >= 0.6 * target)) and len(pages[-1]) >= MIN_PAGE_WORDS:
            pages.append([])
    return [" ".join(page) for page in pages if page]


def close_views(panel: tuple[int, int], frame: tuple[int, int], rtl: bool) -> tuple[View, View, View]:
    """The close views of a panel on a frame: where reading starts, where it ends, the
    centre. Each is the panel enlarged CLOSE_ZOOM times, widened (or heightened) toward the
    frame's shape as far as the panel reaches, so it fills more of the screen."""
    pw, ph = panel
    aspect = frame[0] / frame[1]
    w, h = pw / CLOSE_ZOOM, ph / CLOSE_ZOOM
    if w / h < aspect:
        w = min(pw, h * aspect)
    else:
        h = min(ph, w / aspect)
    sw, sh = w / pw, h / ph  # shares
    left, right = (1 - sw, 1.0) if rtl else (0.0, sw)
    start = View(left, 0.0, right, sh)
    end_left = 0.0 if rtl else 1 - sw
    end = View(end_left, 1 - sh, end_left + sw, 1.0)
    centre = View((1 - sw) / 2, (1 - sh) / 2, (1 + sw) / 2, (1 + sh) / 2)
    return start, end, centre


def pushed(view: View, zoom: float = PUSH_ZOOM) -> View:
    """``view`` narrowed ``zoom`` times about its centre: where a push-in ends."""
    cx, cy = (view.x0 + view.x1) / 2, (view.y0 + view.y1) / 2
    hw, hh = (view.x1 - view.x0) / (2 * zoom), (view.y1 - view.y0) / (2 * zoom)
    return View(cx - hw, cy - hh, cx + hw, cy + hh)


def plan_shots(
    beats: Sequence[Beat], frame: tuple[int, int], *, rtl: bool = False, motion: str = "none"
) -> list[Shot]:
    """The shots of the whole video, in order (their ``seconds`` add up to the beats')."""
    if motion not in MOTIONS:
        raise ValueError(f"MOTION must be one of {', '.join(MOTIONS)}, got {motion!r}")
    push = PUSH_SECONDS if motion == "push" else 0.0
    shots: list[Shot] = []
    framing = 0
    for beat in beats:
        if not beat.panels:
            raise ValueError("a segment has at least one panel")
        lines = _lines(beat)
        share = beat.seconds / len(beat.panels)
        for k, (panel, size) in enumerate(beat.panels):
            begin = k * share
            count = _framings(begin, share, [start for start, _ in lines], push)
            views = _cycle(size, frame, rtl, count)
            for n, view in enumerate(views):
                a, b = begin + n * share / count, begin + (n + 1) * share / count
                shots.extend(_split(panel, view, a, b, lines, framing, push))
                framing += 1
    return shots


def _lines(beat: Beat) -> list[tuple[float, str]]:
    """``(start, text)`` of each subtitle line of a beat: its cues, or its paged text."""
    cues = sorted((max(0.0, start), text.strip()) for start, _end, text in beat.cues if text.strip())
    if cues:
        return [(0.0, cues[0][1]), *cues[1:]]  # the first line shows from the segment's start
    pages = pages_of(beat.subtitle, math.ceil(beat.seconds / PAGE_SECONDS) if beat.seconds > 0 else 1)
    if not pages:
        return [(0.0, "")]
    total = sum(len(page) + 1 for page in pages)
    lines, at = [], 0.0
    for page in pages:
        lines.append((at, page))
        at += beat.seconds * (len(page) + 1) / total
    return lines


def _framings(begin: float, length: float, line_starts: list[float], push: float) -> int:
    """How many framings a panel shown from ``begin`` for ``length`` seconds gets."""
    if length <= 0:
        return 1
    count = max(1, round(length / TARGET_SHOT), math.ceil(length / MAX_SHOT))
    while length / (count + 1) >= MIN_FRAMING:
        if _longest_still(begin, length, count, line_starts, push) <= MAX_STILL:
            break
        count += 1
    return count


def _longest_still(begin: float, length: float, count: int, line_starts: list[float], push: float) -> float:
    """The longest stretch with an unchanged picture if the panel gets ``count`` framings."""
    cuts = [begin + n * length / count for n in range(count)]
    end = begin + length
    marks = sorted({*cuts, *(s for s in line_starts if begin < s < end), end})
    longest = 0.0
    for a, b in zip(marks, marks[1:], strict=False):
        moving = min(push, b - a) if a in cuts else 0.0
        longest = max(longest, b - a - moving)
    return longest


def _cycle(size: tuple[int, int], frame: tuple[int, int], rtl: bool, count: int) -> list[View]:
    """``count`` framings of a panel: the whole of it, then its close views in turn."""
    views = (FULL, *close_views(size, frame, rtl))
    return [views[n % len(views)] for n in range(count)]


def _split(
    panel: Path, view: View, begin: float, end: float, lines: list[tuple[float, str]], framing: int, push: float
) -> list[Shot]:
    """The shots of one framing: a new one at each line starting inside it."""
    marks = [begin, *(s for s, _ in lines if begin < s < end), end]
    shots: list[Shot] = []
    shown = pushed(view) if push else view
    for a, b in zip(marks, marks[1:], strict=False):
        text = [line for s, line in lines if s <= a + 1e-9][-1]
        if shots and shots[-1].subtitle == text:  # the same line again: one shot
            shots[-1] = Shot(panel, text, shots[-1].seconds + b - a, shown, framing, shots[-1].push_from)
        else:
            shots.append(Shot(panel, text, b - a, shown, framing, view if push and not shots else None))
    return shots
