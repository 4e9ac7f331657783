"""The video's rhythm (``rhythm.plan_shots``): cuts a minute, the longest shot, the longest
still picture, the close views of a long panel in reading order, the pages of a subtitle,
and the push-ins of MOTION=push. Pure: sizes and seconds in, shots out."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.pipeline.providers.render.rhythm import (
    FULL,
    MAX_SHOT,
    MAX_STILL,
    PUSH_SECONDS,
    Beat,
    View,
    close_views,
    pages_of,
    plan_shots,
    pushed,
)
from services.pipeline.quality.gate import LIMITS

LANDSCAPE, PORTRAIT = (1920, 1080), (1080, 1920)
WORDS = "Minh gặp ông rồng hiền lành trên núi, rồi cả hai cùng bay qua những đám mây trắng.".split()


def _text(rng: random.Random, seconds: float) -> str:
    """About the narration's pace: 2.6 words a second."""
    return " ".join(rng.choice(WORDS) for _ in range(max(2, round(seconds * 2.6))))


def _chapter(rng: random.Random, count: int = 60) -> list[Beat]:
    """A chapter of ``count`` panels of assorted shapes, narrated for 2 to 11 s each."""
    shapes = [(600, 400), (500, 900), (1400, 450), (700, 700)]
    beats = []
    for n in range(count):
        seconds = rng.uniform(2.0, 11.0)
        beats.append(Beat(((Path(f"p{n}.png"), rng.choice(shapes)),), seconds, _text(rng, seconds)))
    return beats


def _cuts(shots: list) -> list[float]:
    """When the framing changes (a cut), from the plan."""
    times, at = [], 0.0
    for before, shot in zip(shots, shots[1:], strict=False):
        at += before.seconds
        if shot.framing != before.framing:
            times.append(at)
    return times


def _stills(shots: list, push: float = 0.0) -> list[float]:
    """How long each picture is held unchanged: a shot, less its push-in."""
    return [s.seconds - (min(push, s.seconds) if s.push_from is not None else 0.0) for s in shots]


def _framings(shots: list) -> list[float]:
    lengths: dict[int, float] = {}
    for shot in shots:
        lengths[shot.framing] = lengths.get(shot.framing, 0.0) + shot.seconds
    return list(lengths.values())


@pytest.mark.parametrize("motion", ["none", "push"])
@pytest.mark.parametrize("frame", [LANDSCAPE, PORTRAIT])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_chapter_cuts_12_to_22_times_a_minute_and_never_holds_a_picture_over_the_limits(
    seed: int, frame: tuple[int, int], motion: str
) -> None:
    beats = _chapter(random.Random(seed))
    shots = plan_shots(beats, frame, rtl=True, motion=motion)
    total = sum(b.seconds for b in beats)
    assert sum(s.seconds for s in shots) == pytest.approx(total)  # nothing lost, nothing added
    low, high = LIMITS["cuts_per_minute"]
    assert low <= len(_cuts(shots)) * 60 / total <= high
    assert max(_framings(shots)) <= MAX_SHOT <= LIMITS["longest_shot_seconds"]
    assert max(_stills(shots, PUSH_SECONDS if motion == "push" else 0.0)) <= MAX_STILL + 1e-9
    assert MAX_STILL < LIMITS["frozen_seconds"]


def test_a_panel_held_long_gets_its_close_views_in_reading_order() -> None:
    beat = Beat(((Path("tall.png"), (600, 400)),), 12.0, _text(random.Random(0), 12.0))
    rtl = plan_shots([beat], LANDSCAPE, rtl=True)
    views = list(dict.fromkeys(s.view for s in rtl))
    start, end, centre = close_views((600, 400), LANDSCAPE, rtl=True)
    assert views == [FULL, start, end]  # 12 s: three framings of 4 s
    assert start.x1 == 1.0 and start.y0 == 0.0  # manga: reading starts at the top right
    assert end.x0 == 0.0 and end.y1 == 1.0  # and ends at the bottom left
    ltr = close_views((600, 400), LANDSCAPE, rtl=False)
    assert ltr[0].x0 == 0.0 and ltr[1].x1 == 1.0  # the other way round for left-to-right
    assert [round(f, 6) for f in _framings(rtl)] == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("size", [(600, 400), (400, 1200), (1600, 400), (800, 800)])
@pytest.mark.parametrize("frame", [LANDSCAPE, PORTRAIT])
def test_close_views_lie_inside_the_panel_and_come_closer(size: tuple[int, int], frame: tuple[int, int]) -> None:
    for view in close_views(size, frame, rtl=True):
        assert 0.0 <= view.x0 < view.x1 <= 1.0 and 0.0 <= view.y0 < view.y1 <= 1.0
        assert (view.x1 - view.x0) * (view.y1 - view.y0) < 0.75  # a closer look, not the whole
        w, h = view.pixels(size)
        # widened toward the frame's shape as far as the panel reaches
        full_aspect, aspect, target = size[0] / size[1], w / h, frame[0] / frame[1]
        assert abs(aspect - target) <= abs(full_aspect - target) + 1e-6


def test_a_tall_panel_close_up_spans_its_width_on_a_landscape_frame() -> None:
    start, end, _ = close_views((400, 1200), LANDSCAPE, rtl=True)
    assert (start.x0, start.x1) == (0.0, 1.0) and start.y0 == 0.0  # a band across the top
    assert end.y1 == 1.0  # then the bottom


def test_no_framing_lasts_over_the_longest_shot_even_for_a_very_long_panel() -> None:
    beat = Beat(((Path("p.png"), (600, 400)),), 70.0, _text(random.Random(1), 70.0))
    shots = plan_shots([beat], LANDSCAPE)
    assert max(_framings(shots)) <= MAX_SHOT
    assert len({s.view for s in shots}) == 4  # the whole panel and its three close views, in turn


def test_a_still_held_too_long_between_lines_gets_one_more_framing() -> None:
    # one cue line for 5 s: a single framing would hold one picture for 5 s
    beat = Beat(((Path("p.png"), (600, 400)),), 5.0, "x", ((0.0, 5.0, "Một dòng thật dài."),))
    shots = plan_shots([beat], LANDSCAPE)
    assert len(_framings(shots)) == 2 and max(_stills(shots)) <= MAX_STILL


def test_subtitles_are_paged_at_the_reading_pace_after_punctuation() -> None:
    assert pages_of("Minh gặp rồng. Rồng cười rất to và bay đi.", 2) == ["Minh gặp rồng.", "Rồng cười rất to và bay đi."]
    text = " ".join(WORDS)
    for count in range(1, 6):
        pages = pages_of(text, count)
        assert " ".join(pages) == text and len(pages) <= count  # every word, in order
        assert all(len(page.split()) >= 2 for page in pages)
    assert pages_of("một", 3) == ["một"] and pages_of("", 2) == []
    beat = Beat(((Path("p.png"), (600, 400)),), 7.0, text)
    shots = plan_shots([beat], LANDSCAPE)
    assert " ".join(dict.fromkeys(s.subtitle for s in shots)) == text
    assert max(_stills(shots)) <= MAX_STILL


def test_push_motion_opens_each_framing_with_a_push_in_to_its_view() -> None:
    beats = _chapter(random.Random(5), 10)
    shots = plan_shots(beats, LANDSCAPE, motion="push")
    firsts = {}
    for shot in shots:
        firsts.setdefault(shot.framing, shot)
    for shot in shots:
        if shot is firsts[shot.framing]:
            assert shot.push_from is not None and shot.view == pushed(shot.push_from)
        else:
            assert shot.push_from is None and shot.view == firsts[shot.framing].view  # held where it ended
    assert all(s.push_from is None for s in plan_shots(beats, LANDSCAPE))
    closer = pushed(FULL)
    assert 0 < closer.x0 < closer.x1 < 1 and (closer.x1 - closer.x0) == pytest.approx(1 / 1.05)
    assert pushed(View(0.5, 0.0, 1.0, 0.5)).x1 < 1.0


def test_an_unknown_motion_or_a_segment_without_panels_is_refused() -> None:
    with pytest.raises(ValueError, match="MOTION must be one of none, push"):
        plan_shots([Beat(((Path("p.png"), (10, 10)),), 1.0, "a b")], LANDSCAPE, motion="zoom")
    with pytest.raises(ValueError, match="at least one panel"):
        plan_shots([Beat((), 1.0, "a b")], LANDSCAPE)
