"""Framing: a panel fills the frame as far as its shape allows, its subtitle in the safe area."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.pipeline.panels import Box
from services.pipeline.providers.render.compositor import caption_of, composite
from services.pipeline.providers.render.framing import MAX_SHRINK, layout, safe_box
from services.pipeline.providers.render.render_local import LANDSCAPE, PORTRAIT, Shot

SHAPES = {"wide": (1000, 400), "square": (900, 900), "page": (800, 1100), "tall": (500, 1500), "strip": (800, 1420)}


def inside(inner: Box, outer: Box) -> bool:
    return outer.contains(inner)


def overlaps(a: Box, b: Box) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("frame", [LANDSCAPE, PORTRAIT], ids=["16:9", "9:16"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_subtitle_is_in_the_safe_area_and_the_panel_fills_what_its_shape_allows(frame, shape) -> None:
    pw, ph = SHAPES[shape]
    width, height = frame
    plan = layout((pw, ph), frame, caption_height=140)
    safe = safe_box(frame)
    frame_box = Box(0, 0, width, height)
    assert plan.caption is not None and inside(plan.caption, safe)
    assert inside(plan.panel, frame_box)
    assert abs(plan.panel.width / plan.panel.height - pw / ph) < 0.01  # never stretched
    full = min(width / pw, height / ph)
    scale = plan.panel.width / pw
    if plan.over_panel:  # kept full size: only when clearing the subtitle would shrink it too far
        assert scale == pytest.approx(full, rel=0.01)
    else:
        assert not overlaps(plan.panel, plan.caption)
        assert scale >= MAX_SHRINK * full - 0.01


def test_a_wide_panel_on_a_landscape_frame_spans_it_with_its_subtitle_below() -> None:
    plan = layout(SHAPES["wide"], LANDSCAPE, caption_height=120)
    assert plan.panel.width == 1920 and not plan.over_panel
    assert plan.panel.y1 <= plan.caption.y0


def test_a_page_shaped_panel_on_a_landscape_frame_keeps_its_height_under_a_band() -> None:
    plan = layout(SHAPES["page"], LANDSCAPE, caption_height=300)
    assert plan.panel.height == 1080 and plan.over_panel


def test_a_shorts_frame_keeps_the_subtitle_clear_of_youtubes_buttons_and_title() -> None:
    plan = layout(SHAPES["square"], PORTRAIT, caption_height=150)
    assert plan.caption.x1 <= 0.84 * 1080 + 1 and plan.caption.y1 <= 0.78 * 1920 + 1
    assert plan.panel.width == 1080 and not plan.over_panel  # the full width, above the subtitle


def test_without_a_subtitle_the_panel_is_centred_at_its_full_fit() -> None:
    plan = layout((1000, 500), LANDSCAPE)
    assert plan.caption is None and plan.panel == Box(0, 60, 1920, 1020)


def test_a_panel_without_a_size_is_refused() -> None:
    with pytest.raises(ValueError, match="has a size"):
        layout((0, 100), LANDSCAPE)


@pytest.mark.parametrize("frame", [LANDSCAPE, PORTRAIT], ids=["16:9", "9:16"])
def test_what_the_panel_leaves_is_its_own_blurred_darkened_copy_not_a_flat_bar(tmp_path: Path, frame) -> None:
    rng = np.random.default_rng(3)
    art = (rng.random((1100, 800, 3)) * 255).astype(np.uint8)
    art[:, :400] = (230, 80, 40)  # a warm left half
    art[:, 400:] = (40, 90, 220)  # a cool right half
    Image.fromarray(art).save(tmp_path / "panel.png")
    subtitle = "Minh đi lên núi hái nấm."
    picture = np.asarray(composite(Shot(tmp_path / "panel.png", subtitle, 2.0), frame)).astype(float)
    plan = layout((800, 1100), frame, caption_of(subtitle, frame)[3])
    width, height = frame
    if plan.panel.x0 > 20:  # pillarboxed: the sides carry the panel's colours, dimmed
        left, right = picture[:, : plan.panel.x0 - 5], picture[:, plan.panel.x1 + 5 :]
    else:  # letterboxed: above the panel, and below the safe area (no subtitle there)
        left, right = picture[: plan.panel.y0 - 5], picture[safe_box(frame).y1 + 5 :]
    for strip in (left, right):
        assert strip.size and strip.std() > 3  # not one flat colour
        assert strip.mean() < picture[plan.panel.y0:plan.panel.y1, plan.panel.x0:plan.panel.x1].mean()
    if plan.panel.x0 > 20:
        assert left[..., 0].mean() > left[..., 2].mean() and right[..., 2].mean() > right[..., 0].mean()
