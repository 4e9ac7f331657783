"""The sample chapter: drawn pages of panels with Vietnamese bubbles, recorded so none is made twice."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from services.pipeline.providers.fetch import sample_chapter


def test_chapters_are_numbered_recorded_and_deterministic(tmp_path: Path) -> None:
    first = sample_chapter.make_chapter(tmp_path / "a", panels=12)
    second = sample_chapter.make_chapter(tmp_path / "a", panels=3)
    assert (first.name, second.name) == ("chapter-0001", "chapter-0002")
    manga = json.loads((first.parent / "manga.json").read_text(encoding="utf-8"))
    assert manga["title"] == "Cậu bé và con rồng" and manga["reading_direction"] == "rtl"
    assert [c["chapter"] for c in manga["chapters"]] == [1, 2]
    assert sample_chapter.next_chapter_number(tmp_path / "a") == 3
    pages = sorted(first.glob("page-*.png"))
    assert [p.name for p in pages] == ["page-01.png", "page-02.png", "page-03.png"]  # four panels a page
    with Image.open(pages[0]) as image:
        assert image.size == (1000, 1400)
    chapter = json.loads((first / "chapter.json").read_text(encoding="utf-8"))
    assert chapter["lines"][0] == {
        "panel": "page-01.png#1",
        "speaker": "Minh",
        "text": "Sáng nay trời đẹp quá! Mình sẽ lên núi hái nấm.",
    }
    assert [line["panel"] for line in chapter["lines"]][:5] == [
        "page-01.png#1", "page-01.png#2", "page-01.png#3", "page-01.png#4", "page-02.png#1"]
    again = sample_chapter.make_chapter(tmp_path / "b", panels=12)
    assert (again / "page-02.png").read_bytes() == pages[1].read_bytes()
    assert sorted(p.name for p in second.glob("page-*.png")) == ["page-01.png"]  # three on one page


def test_the_cut_finds_every_drawn_panel_in_the_storys_order(tmp_path: Path) -> None:
    # the newcomer's first video: the pages split, read right to left, one line a panel
    from services.pipeline.panels import ReadingDirection, iou, panels_of
    from services.pipeline.providers.fetch.sample_pages import layout_boxes

    folder = sample_chapter.make_chapter(tmp_path, panels=11)  # pages of 4, 4 and 3
    layouts = ["tall", "four", "three"]
    for page, layout in zip(sorted(folder.glob("page-*.png")), layouts):
        found = panels_of(page, ReadingDirection.RTL)
        truth = [box for box, _ in layout_boxes(layout)]
        assert len(found) == len(truth) and all(iou(f, t) >= 0.9 for f, t in zip(found, truth)), page.name
    first = panels_of(sorted(folder.glob("page-*.png"))[0], ReadingDirection.RTL)[0]
    assert first.x0 > 400 and first.x1 > 900  # the story begins on the right, as manga do


def test_command_line_prints_the_folder(tmp_path: Path, capsys) -> None:
    assert sample_chapter.main(["--samples", str(tmp_path), "--panels", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith("chapter-0001")
