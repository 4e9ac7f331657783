"""The sample chapter: drawn panels with Vietnamese bubbles, recorded so none is made twice."""

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
    assert manga["title"] == "Cậu bé và con rồng"
    assert [c["chapter"] for c in manga["chapters"]] == [1, 2]
    assert sample_chapter.next_chapter_number(tmp_path / "a") == 3
    panels = sorted(first.glob("panel-*.png"))
    assert len(panels) == 12
    with Image.open(panels[0]) as image:
        assert image.size == (800, 1100)
    chapter = json.loads((first / "chapter.json").read_text(encoding="utf-8"))
    assert chapter["lines"][0] == {
        "panel": "panel-001.png",
        "speaker": "Minh",
        "text": "Sáng nay trời đẹp quá! Mình sẽ lên núi hái nấm.",
    }
    again = sample_chapter.make_chapter(tmp_path / "b", panels=1)
    assert (again / "panel-001.png").read_bytes() == panels[0].read_bytes()


def test_command_line_prints_the_folder(tmp_path: Path, capsys) -> None:
    assert sample_chapter.main(["--samples", str(tmp_path), "--panels", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith("chapter-0001")
