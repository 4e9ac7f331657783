"""FetchManga cuts a chapter's pages into panels, in the direction its metadata says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from services.pipeline.panels import Box, iou
from services.pipeline.panels.order import ReadingDirection
from services.pipeline.providers.fetch.sample_pages import draw_page
from services.pipeline.stages import fetcher

from .stage_context import RecordingContext


def make_manga(samples: Path, meta: dict, pages: list[tuple[str, int]], suffix: str = ".png") -> None:
    folder = samples / "truyen-thu" / "chapter-0001"
    folder.mkdir(parents=True)
    (samples / "truyen-thu" / "manga.json").write_text(json.dumps({"title": "Truyện thử", **meta}), encoding="utf-8")
    lines = []
    for index, (layout, seed) in enumerate(pages, start=1):
        page, _ = draw_page(layout, seed=seed)
        page.save(folder / f"page-{index:02d}{suffix}")
        lines.append({"panel": f"page-{index:02d}{suffix}", "speaker": "Minh", "text": f"Trang {index}"})
    (folder / "chapter.json").write_text(json.dumps({"lines": lines}, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    monkeypatch.delenv("READING_DIRECTION", raising=False)
    return data_dir


def fetch(job_id: str = "job-cut") -> tuple[Path, dict, dict]:
    answer = fetcher.handler({"job_id": job_id}, RecordingContext())
    assert answer["status"] == "success"
    work = Path(RecordingContext().data_dir) / "work" / job_id
    return work, json.loads((work / "source.json").read_text("utf-8")), json.loads((work / "panels.json").read_text("utf-8"))


def test_each_page_becomes_its_panels_in_manga_order(data: Path) -> None:
    make_manga(data / "samples", {"original_language": "ja"}, [("grid", 1), ("tall", 2)])
    work, source, plan = fetch()
    assert source["reading_direction"] == "rtl" and plan["direction"] == "rtl"
    assert source["pages"] == ["page-001.png", "page-002.png"]
    assert sorted(p.name for p in (work / "pages").iterdir()) == source["pages"]
    assert source["panels"] == [f"panel-{n:03d}.png" for n in range(1, 11)]  # 6 + 4, numbered across the chapter
    assert sorted(p.name for p in (work / "panels").iterdir()) == source["panels"]
    for page, (layout, seed) in zip(plan["pages"], [("grid", 1), ("tall", 2)]):
        _, truth = draw_page(layout, seed=seed)
        boxes = [Box.from_list(entry["box"]) for entry in page["panels"]]
        assert len(boxes) == len(truth) and all(iou(b, t) >= 0.9 for b, t in zip(boxes, truth))
        for entry, box in zip(page["panels"], boxes):  # each panel file is its box's crop
            with Image.open(work / "panels" / entry["file"]) as crop:
                assert crop.size == (box.width, box.height)
    from services.pipeline.panels.cutting import panel_boxes
    from services.pipeline.workspace import Workspace

    boxes = panel_boxes(Workspace(data, "job-cut"))
    assert list(boxes) == source["panels"]
    assert boxes["panel-007.png"] == Box.from_list(plan["pages"][1]["panels"][0]["box"])
    # a page's line goes to its first panel
    assert source["lines"] == {"panel-001.png": {"panel": "page-01.png", "speaker": "Minh", "text": "Trang 1"},
                               "panel-007.png": {"panel": "page-02.png", "speaker": "Minh", "text": "Trang 2"}}


@pytest.mark.parametrize(
    ("meta", "setting", "expected"),
    [({"original_language": "ko"}, None, "ltr"), ({}, None, "ltr"), ({"reading_direction": "rtl"}, None, "rtl"),
     ({"original_language": "ja"}, "ltr", "ltr"), ({"original_language": "en"}, "rtl", "rtl")],
)
def test_the_direction_comes_from_the_setting_then_the_manga(data: Path, monkeypatch, meta, setting, expected) -> None:
    if setting:
        monkeypatch.setenv("READING_DIRECTION", setting)
    make_manga(data / "samples", meta, [("grid", 3)])
    _, source, plan = fetch()
    assert source["reading_direction"] == plan["direction"] == expected
    first, second = (Box.from_list(plan["pages"][0]["panels"][i]["box"]) for i in (0, 1))
    assert (first.x0 > second.x0) == (expected == ReadingDirection.RTL.value)


def test_a_retried_fetch_cuts_again_from_the_pages(data: Path) -> None:
    make_manga(data / "samples", {"original_language": "ja"}, [("four", 4)], suffix=".jpg")
    work, first, _ = fetch("job-again")
    again_work, again, _ = fetch("job-again")  # the same chapter, fetched and cut afresh
    assert again["panels"] == first["panels"] == [f"panel-{n:03d}.jpg" for n in range(1, 5)]
    assert sorted(p.name for p in (work / "panels").iterdir()) == again["panels"]
    assert sorted(p.name for p in (work / "pages").iterdir()) == ["page-001.jpg"]


def test_a_page_that_is_not_an_image_is_kept_whole_with_a_warning(data: Path, caplog) -> None:
    make_manga(data / "samples", {}, [("four", 5)])
    (data / "samples" / "truyen-thu" / "chapter-0001" / "page-02.png").write_bytes(b"not a picture")
    _, source, plan = fetch()
    assert len(source["panels"]) == 5 and plan["pages"][1]["panels"] == [{"file": "panel-005.png", "box": None}]
    assert "could not be cut into panels" in caplog.text


def test_a_wrong_direction_setting_is_refused(data: Path, monkeypatch) -> None:
    from services.pipeline.settings import SettingsError, load_settings

    monkeypatch.setenv("READING_DIRECTION", "upwards")
    with pytest.raises(SettingsError, match="READING_DIRECTION: .*auto.*rtl.*ltr"):
        load_settings()


def test_a_page_whose_cut_fails_half_way_is_kept_whole_and_leaves_no_stray_panel(data: Path, monkeypatch) -> None:
    from services.pipeline.panels import cutting

    make_manga(data / "samples", {}, [("two", 7), ("four", 6)])
    real_save, calls = cutting._save, []

    def failing_save(picture, path, suffix):
        calls.append(path)
        if len(calls) == 5:  # the second page's third panel: a full disk, say
            raise OSError(28, "No space left on device")
        real_save(picture, path, suffix)

    monkeypatch.setattr(cutting, "_save", failing_save)
    work, source, plan = fetch()
    assert plan["pages"][1]["panels"] == [{"file": "panel-003.png", "box": None}]
    assert source["panels"] == ["panel-001.png", "panel-002.png", "panel-003.png"]
    assert sorted(p.name for p in (work / "panels").iterdir()) == source["panels"]
