"""fetcher, scriptgen, ttsgen and cleanup on the embedded defaults, with the seed's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages import cleanup, fetcher, scriptgen, ttsgen

from .stage_context import RecordingContext


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    sample_chapter.make_chapter(data_dir / "samples", panels=3)
    return data_dir


def test_fetch_script_tts_cleanup_chain(data: Path) -> None:
    fetched = fetcher.handler({}, RecordingContext())
    assert set(fetched) == {"status", "job_id", "manga_id", "manga_title"}
    assert fetched["status"] == "success" and fetched["job_id"].startswith("job-")
    assert (fetched["manga_id"], fetched["manga_title"]) == ("cau-be-va-con-rong", "Cậu bé và con rồng")
    job_id = fetched["job_id"]
    work = data / "work" / job_id
    assert sorted(p.name for p in (work / "panels").iterdir()) == [
        "panel-001.png",
        "panel-002.png",
        "panel-003.png",
    ]
    source = json.loads((work / "source.json").read_text(encoding="utf-8"))
    assert source["title"] == "Cậu bé và con rồng - Chương 1" and "Cậu bé" in source["credits"]

    assert scriptgen.handler({"job_id": job_id}, RecordingContext()) == {
        "job_id": job_id,
        "script_generated": True,
        "segment_count": 3,
    }
    assert ttsgen.handler({"job_id": job_id}, RecordingContext()) == {
        "job_id": job_id,
        "audio_generated": True,
        "segment_count": 3,
        "continuation_token": None,
    }
    speech = json.loads((work / "speech.json").read_text(encoding="utf-8"))
    assert [s["audio"] for s in speech["segments"]] == ["seg-001.wav", "seg-002.wav", "seg-003.wav"]
    assert all(s["seconds"] > 0.5 for s in speech["segments"])

    before = (work / "audio" / "seg-002.wav").stat().st_mtime_ns
    ttsgen.handler({"job_id": job_id}, RecordingContext())  # a resumed TTS does not speak again
    assert (work / "audio" / "seg-002.wav").stat().st_mtime_ns == before

    files = [p for p in work.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    done = cleanup.handler({"job_id": job_id}, RecordingContext())
    assert done == {"job_id": job_id, "objects_deleted": len(files), "bytes_freed": size}
    assert not work.exists()
    assert cleanup.handler({"job_id": job_id}, RecordingContext()) == {
        "job_id": job_id,
        "objects_deleted": 0,
        "bytes_freed": 0,
    }


def test_each_chapter_is_taken_once_then_no_manga_is_available(data: Path) -> None:
    first = fetcher.handler({"job_id": "job-one"}, RecordingContext())
    assert first["status"] == "success"
    assert (
        fetcher.handler({"job_id": "job-one"}, RecordingContext())["manga_id"] == first["manga_id"]
    )  # a retry: same chapter
    assert fetcher.handler({}, RecordingContext()) == {"status": "no_manga_available"}
    sample_chapter.make_chapter(data / "samples", panels=2)
    second = fetcher.handler({"job_id": "job-two", "manga": "Cậu bé và con rồng"}, RecordingContext())
    assert second["status"] == "success"
    ledger = json.loads((data / "fetch_ledger.json").read_text())
    assert ledger == {"version": 1, "cau-be-va-con-rong": {"1": "job-one", "2": "job-two"}}


def test_an_unknown_manga_is_not_available(data: Path) -> None:
    answer = fetcher.handler({"job_id": "job-x", "manga": "Không có truyện này"}, RecordingContext())
    assert answer == {"status": "no_manga_available"}


def test_script_before_fetch_names_the_missing_step(data: Path) -> None:
    with pytest.raises(FileNotFoundError, match="source.json is missing"):
        scriptgen.handler({"job_id": "job-never-fetched"}, RecordingContext())


def test_a_local_video_publishes_no_path_of_the_machine(data: Path) -> None:
    from datetime import datetime, timezone

    from services.pipeline import publishing
    from services.pipeline.providers.upload import youtube
    from services.pipeline.providers.upload.local_publisher import publish_local
    from services.pipeline.workspace import Workspace

    manga_json = data / "samples" / sample_chapter.SAMPLE_MANGA_ID / "manga.json"
    meta = json.loads(manga_json.read_text(encoding="utf-8"))
    manga_json.write_text(
        json.dumps(meta | {"author": "Nguyễn Văn A", "credits": "Tranh vẽ bởi nhóm Rồng Xanh, CC BY 4.0"}),
        encoding="utf-8",
    )
    job_id = fetcher.handler({"job_id": "job-nopath"}, RecordingContext())["job_id"]
    work = Workspace(data, job_id)
    source = work.read("source.json")
    assert source["credits"] == (
        "Truyện: Cậu bé và con rồng (chương 1) | Tác giả: Nguyễn Văn A"
        " | Tranh vẽ bởi nhóm Rồng Xanh, CC BY 4.0"
    )
    scriptgen.handler({"job_id": job_id}, RecordingContext())
    ttsgen.handler({"job_id": job_id}, RecordingContext())
    work.video.write_bytes(b"not really an mp4")  # the publisher only copies it
    publish_local(work, datetime(2026, 2, 8, 2, 0, tzinfo=timezone.utc))
    (published,) = (data / "published").rglob("*.json")
    metadata = published.read_text(encoding="utf-8")
    script = work.read("script.json")
    body = json.dumps(
        youtube.video_body(
            script["title"], publishing.describe(script, source), script["tags"], youtube.UploadSettings()
        ),
        ensure_ascii=False,
    )
    for text in (metadata, body):
        assert str(data) not in text and str(data.resolve()) not in text and "chapter-0001" not in text
        assert "Tác giả: Nguyễn Văn A" in text and "CC BY 4.0" in text


@pytest.mark.parametrize(
    "credits",
    [
        "Cậu bé, chương 2 (nguồn: thư mục /srv/video data/samples/cau-be/chapter-0002)",
        "Cậu bé, chương 2 (file:///srv/video data/samples/cau-be/chapter-0002)",
        "Cậu bé, chương 2 (nguồn: ~/manga/cau-be/chapter-0002)",
    ],
)
def test_describe_lets_no_path_through_whatever_source_json_says(credits: str) -> None:
    from services.pipeline import publishing
    from services.pipeline.providers.upload import youtube

    url = "https://mangadex.org/chapter/8f1c2d3e-0000-4000-8000-000000000001"
    script = {"description": "Kể lại chương 2 (xem /home/op/notes.txt).", "writer": "openai"}
    source = {"credits": f"{credits} | Nguồn: MangaDex, {url}"}
    described = publishing.describe(script, source)
    body = youtube.video_body("Cậu bé", described, [], youtube.UploadSettings())["snippet"]["description"]
    for text in (described, body):
        assert "/srv" not in text and "video data" not in text and "~/" not in text and "/home" not in text
        assert "chapter-0002" not in text and "file:" not in text
        assert url in text and text.startswith("Kể lại chương 2") and "Cậu bé, chương 2" in text


def test_a_manga_folder_named_version_is_skipped_with_a_warning(data: Path, caplog) -> None:
    import logging
    import shutil

    from services.pipeline.providers.fetch.local_source import LocalFolderSource

    shutil.copytree(data / "samples" / sample_chapter.SAMPLE_MANGA_ID, data / "samples" / "version")
    source = LocalFolderSource(data / "samples", data)
    with caplog.at_level(logging.WARNING):
        folders = {chapter.manga_id for chapter in source.chapters()}
    assert folders == {sample_chapter.SAMPLE_MANGA_ID}  # "version" is the ledger's own key
    assert any("named 'version'" in record.getMessage() for record in caplog.records)
