"""Panel detection on drawn pages of known layouts: each box found, in reading order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from services.pipeline.panels import Box, ReadingDirection, direction_for, find_panels, iou, panels_of
from services.pipeline.panels.detect import PIECE_RATIO
from services.pipeline.providers.fetch.sample_pages import LAYOUTS, draw_page, draw_strip

RTL, LTR = ReadingDirection.RTL, ReadingDirection.LTR


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


def assert_matches(found: list[Box], truth: list[Box]) -> None:
    assert len(found) == len(truth), (found, truth)
    for index, (got, want) in enumerate(zip(found, truth)):
        assert iou(got, want) >= 0.9, (index, got, want, iou(got, want))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("direction", [RTL, LTR])
def test_each_panel_of_a_framed_layout_is_found_in_reading_order(layout: str, direction: ReadingDirection) -> None:
    page, truth = draw_page(layout, seed=len(layout), direction=direction)
    assert_matches(find_panels(gray(page), direction), truth)


def test_a_frameless_page_splits_at_its_gutters() -> None:
    page, truth = draw_page("four", border=False, seed=3)
    assert_matches(find_panels(gray(page), RTL), truth)


def test_the_order_flips_for_a_left_to_right_source() -> None:
    page, _ = draw_page("wide", seed=5)
    rtl, ltr = find_panels(gray(page), RTL), find_panels(gray(page), LTR)
    assert sorted(rtl) == sorted(ltr) and rtl != ltr
    # the full-width rows keep their place; the panels of each row swap sides
    assert rtl[0] == ltr[0] and rtl[-1] == ltr[-1]
    assert [b.x0 for b in rtl[1:3]] == sorted((b.x0 for b in rtl[1:3]), reverse=True)
    assert [b.x0 for b in ltr[1:3]] == sorted(b.x0 for b in ltr[1:3])


def test_the_tall_panel_on_the_right_is_read_first_in_manga_order() -> None:
    page, truth = draw_page("tall", seed=9)
    found = find_panels(gray(page), RTL)
    assert_matches(found, truth)
    assert found[0].height > 1.8 * found[1].height and found[0].x0 > found[1].x0


def test_an_inset_is_read_after_the_panel_it_sits_on() -> None:
    page, truth = draw_page("inset", seed=2)
    found = find_panels(gray(page), RTL)
    assert_matches(found, truth)
    assert found[0].contains(found[1])


def test_a_splash_page_is_one_panel() -> None:
    page = Image.new("RGB", (1000, 1400), (90, 120, 160))
    draw = ImageDraw.Draw(page)
    for n in range(40):  # full-bleed art: no paper at the edge
        draw.ellipse((n * 23 % 1000, n * 71 % 1400, n * 23 % 1000 + 200, n * 71 % 1400 + 160),
                     fill=(30 + n * 5, 200 - n * 3, 120))
    assert find_panels(gray(page), RTL) == [Box(0, 0, 1000, 1400)]


def test_a_drawing_on_a_page_without_gutters_stays_whole() -> None:
    # one big drawing with a caption squeezed under it: the caption is too small to be a panel
    page = Image.new("RGB", (1000, 1400), (250, 250, 247))
    draw = ImageDraw.Draw(page)
    draw.rectangle((40, 40, 959, 1300), fill=(120, 120, 140), outline=(10, 10, 10), width=4)
    draw.rectangle((400, 1320, 600, 1350), fill=(20, 20, 20))  # a one-line caption below
    found = find_panels(gray(page), RTL)
    assert len(found) == 1 and iou(found[0], Box(40, 40, 1000 - 40, 1351)) >= 0.9


def test_specks_in_a_gutter_do_not_stop_the_cut() -> None:
    page, truth = draw_page("grid", seed=4)
    rng = np.random.default_rng(1)
    pixels = np.asarray(page.convert("L")).copy()
    ys, xs = rng.integers(0, pixels.shape[0], 300), rng.integers(0, pixels.shape[1], 300)
    pixels[ys, xs] = 0  # dust and JPEG specks all over, gutters included
    assert_matches(find_panels(pixels, RTL), truth)


def test_a_scanned_looking_page_still_splits() -> None:
    page, truth = draw_page("wide", seed=8)
    soft = page.filter(ImageFilter.GaussianBlur(1.2)).convert("L")
    assert_matches(find_panels(np.asarray(soft), RTL), truth)


def test_a_strip_is_cut_in_its_blank_bands_into_screen_sized_pieces() -> None:
    strip, drawings = draw_strip([1300, 1400, 1500, 1350], [40, 110, 90, 120, 40], width=800)
    pieces = find_panels(gray(strip), RTL)
    assert_matches(pieces, drawings)  # each drawing is about one screen: one piece each


def test_short_drawings_of_a_strip_are_grouped_and_a_long_one_is_never_cut() -> None:
    heights = [380, 420, 400, 3200, 300, 350]
    strip, drawings = draw_strip(heights, [30, 70, 60, 80, 90, 60, 30], width=800)
    pieces = find_panels(gray(strip), RTL)
    target = PIECE_RATIO * 800
    tall = drawings[3]
    assert any(piece.contains(tall) for piece in pieces)  # the 3,200 px drawing is in one piece
    for piece in pieces:  # every drawing wholly inside one piece: no cut through one
        assert all(not (piece.y0 < d.y1 and d.y0 < piece.y1) or piece.contains(d) for d in drawings)
    short = [p for p in pieces if not p.contains(tall)]
    assert all(0.5 * target <= p.height <= 1.6 * target for p in short[:-1])
    assert pieces == sorted(pieces, key=lambda p: p.y0)


def test_panels_of_reads_an_image_file(tmp_path) -> None:
    page, truth = draw_page("grid", seed=6)
    page.save(tmp_path / "page.jpg", quality=85)  # a JPEG's artefacts, as a scan has
    assert_matches(panels_of(tmp_path / "page.jpg", RTL), truth)
    with pytest.raises(ValueError, match="cannot read an image"):
        panels_of(tmp_path / "missing.png", RTL)


@pytest.mark.parametrize(
    ("language", "declared", "override", "expected"),
    [
        ("ja", None, None, RTL),
        ("ko", None, None, LTR),
        ("en", None, None, LTR),
        (None, None, None, LTR),
        ("ja", "ltr", None, LTR),
        ("ko", "rtl", None, RTL),
        ("ja", None, "ltr", LTR),
        ("en", "ltr", "right-to-left", RTL),
    ],
)
def test_the_direction_comes_from_the_account_then_the_chapter_then_the_language(
    language, declared, override, expected
) -> None:
    assert direction_for(language, declared=declared, override=override) is expected


def test_a_direction_that_is_not_one_says_so() -> None:
    with pytest.raises(ValueError, match="rtl or ltr"):
        direction_for("ja", override="upside-down")


def test_a_bubble_across_a_gutter_keeps_its_two_panels_together_rather_than_cut_it() -> None:
    page, truth = draw_page("grid", seed=7)  # rows of two: truth[2], truth[3] are the middle row
    draw = ImageDraw.Draw(page)
    middle_gutter = (truth[3].x1 + truth[2].x0) // 2
    y = (truth[2].y0 + truth[2].y1) // 2
    draw.ellipse((middle_gutter - 90, y - 50, middle_gutter + 90, y + 50), fill=(255, 255, 255),
                 outline=(0, 0, 0), width=3)
    found = find_panels(gray(page), RTL)
    merged = Box(truth[3].x0, truth[2].y0, truth[2].x1, truth[2].y1)
    assert_matches(found, [truth[0], truth[1], merged, truth[4], truth[5]])


def test_a_picture_framed_to_its_edge_is_one_panel_and_its_bubble_no_inset(tmp_path) -> None:
    from services.pipeline.providers.fetch import sample_chapter

    folder = sample_chapter.make_chapter(tmp_path, panels=2)
    for picture in sorted(folder.glob("panel-*.png")):
        with Image.open(picture) as image:
            assert panels_of(picture, RTL) == [Box(0, 0, image.width, image.height)]
