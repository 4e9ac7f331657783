"""How settings pick each stage's backend, per account; the renderer's shots from TTS cues;
the font check; GenerateTTS continuation; what a published video says about itself."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from services.pipeline import publishing
from services.pipeline.engine.machine import Checkpoint
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.fonts import displayable
from services.pipeline.providers.render.render_local import frame_counts
from services.pipeline.providers.render.rhythm import Beat, Shot, plan_shots
from services.pipeline.providers.script import script_llm
from services.pipeline.providers.script.script_llm import ScriptResult
from services.pipeline.settings import load_settings
from services.pipeline.stages import backend_names, scriptgen, ttsgen
from services.pipeline.tasks import render_task
from services.pipeline.workspace import Workspace
from services.scheduler.settings import SettingsError
from tests.pipeline.stage_context import RecordingContext
from tests.pipeline.test_machine import Clock, Stages, machine

CHANNEL_A = "a1c7c817-4e59-43b7-9365-09675a149a6f"


def test_the_defaults_name_the_embedded_backends_and_why(settings_path: Path) -> None:
    names = backend_names(load_settings())
    assert names["fetch"] == "local folder (SAMPLES_DIR; FETCH_SOURCE=local)"
    assert names["script"] == "template (OPENAI_API_KEY not set)"
    assert names["upload"] == "local publisher (DATA_DIR/published; UPLOAD_TARGET=local)"
    assert "TTS_ENGINE=local" in names["tts"]


@pytest.mark.parametrize(
    ("env", "script"),
    [
        ({"OPENAI_API_KEY": "sk-test"}, "openai at https://api.openai.com/v1 (the SDK's default), "
         "model gpt-4o-mini, panels as images"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, "openai at http://127.0.0.1:11434/v1, "
         "model gpt-4o-mini, text only (OPENAI_VISION off)"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "OPENAI_VISION": "true"}, "openai at "
         "http://127.0.0.1:11434/v1, model gpt-4o-mini, panels as images"),
        ({"OPENAI_API_KEY": "sk-test", "SCRIPT_WRITER": "template"}, "template (SCRIPT_WRITER=template)"),
    ],
    ids=["openai-key", "local-server", "local-vision", "forced-template"],
)  # fmt: skip
def test_the_script_writer_follows_the_key_the_server_and_script_writer(
    settings_path: Path, monkeypatch, env: dict[str, str], script: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert backend_names(load_settings())["script"] == script


def test_each_account_has_its_own_manga_voice_privacy_and_token(settings_path: Path, tmp_path: Path) -> None:
    settings_path.write_text(
        f"""
fetch_source = "mangadex"
tts_engine = "edge-tts"
upload_target = "youtube"
youtube_token_file = "{tmp_path}/default-token.json"

[accounts.kenh-a]
manga_ids = ["{CHANNEL_A}"]
tts_voice = "vi-VN-NamMinhNeural"
youtube_privacy = "unlisted"
youtube_token_file = "{tmp_path}/a-token.json"
youtube_publish_at = "19:30"

[accounts.kenh-b]
manga_search = "rồng"
""",
        encoding="utf-8",
    )
    settings = load_settings()
    a, b = settings.for_account("kenh-a"), settings.for_account("kenh-b")
    assert (a.manga_ids, a.tts_voice, a.youtube_privacy) == ([CHANNEL_A], "vi-VN-NamMinhNeural", "unlisted")
    assert a.youtube_token_file == tmp_path / "a-token.json" and a.youtube_publish_at == "19:30"
    assert (b.manga_search, b.tts_voice, b.youtube_privacy) == ("rồng", "vi-VN-HoaiMyNeural", "private")
    assert b.youtube_token_file == tmp_path / "default-token.json"
    assert backend_names(a)["upload"].startswith("youtube, unlisted, published at 19:30 Vietnam time")
    with pytest.raises(SettingsError, match="account 'kenh-c' is not in the settings' \\[accounts\\] table"):
        settings.for_account("kenh-c")


def test_an_account_setting_is_checked_like_the_global_one(settings_path: Path) -> None:
    settings_path.write_text('[accounts.kenh-a]\ntts_voice = "HoaiMy"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="TTS_VOICE"):
        load_settings()
    settings_path.write_text('[accounts.kenh-a]\nopenai_model = "x"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="OPENAI_MODEL"):  # not a per-account setting
        load_settings()


def test_without_an_accounts_table_every_account_uses_the_global_values(settings_path: Path) -> None:
    settings = load_settings()
    assert settings.for_account("anything") is settings


def test_motion_and_the_reading_order_reach_the_renderer(settings_path: Path, tmp_path: Path, monkeypatch) -> None:
    settings_path.write_text('motion = "none"\n[accounts.kenh-a]\nmotion = "push"\n[accounts.kenh-b]\n', encoding="utf-8")
    settings = load_settings()
    assert (settings.motion, settings.for_account("kenh-a").motion, settings.for_account("kenh-b").motion) == (
        "none", "push", "none",
    )
    monkeypatch.setenv("MOTION", "zoom")
    with pytest.raises(SettingsError, match="MOTION"):
        load_settings()
    calls: list[dict] = []
    monkeypatch.setattr(render_task, "render_video", lambda segments, output, **options: calls.append(options))
    work = Workspace(tmp_path, "job-1")
    work.root.mkdir(parents=True)
    speech = {"segments": [{"panel": "panel-001.png", "text": "Chào", "audio": "seg-001.wav"}]}
    (work.root / "speech.json").write_text(json.dumps(speech), encoding="utf-8")
    (work.root / "source.json").write_text(json.dumps({"account_id": "kenh-a"}), encoding="utf-8")
    render_task.render(work, settings)  # the worker's settings are the global ones: the account's apply
    source = {"reading_direction": "rtl", "account_id": "kenh-b"}
    (work.root / "source.json").write_text(json.dumps(source), encoding="utf-8")
    render_task.render(work, settings)
    assert [(c["motion"], c["rtl"]) for c in calls] == [("push", False), ("none", True)]


# -- the renderer's shots -------------------------------------------------------------------------

A, B = Path("a.png"), Path("b.png")
SIZE = (600, 400)


def test_without_cues_a_short_segment_is_one_shot_of_its_whole_text() -> None:
    beat = Beat(((A, SIZE),), 2.5, "cả đoạn")
    assert plan_shots([beat], (1920, 1080)) == [Shot(A, "cả đoạn", 2.5)]


def test_cues_cut_the_subtitle_at_the_spoken_words_and_a_group_shares_its_time() -> None:
    cues = ((0.1, 1.0, "Minh gặp rồng."), (1.2, 2.0, "Rồng cười."), (2.5, 2.9, "Hết."))
    shots = plan_shots([Beat(((A, SIZE), (B, SIZE)), 3.0, "ignored", cues)], (1920, 1080))
    assert [(s.panel, s.subtitle) for s in shots] == [
        (A, "Minh gặp rồng."),  # from the segment's start, not the first word's
        (A, "Rồng cười."),
        (B, "Rồng cười."),  # the second panel comes in at half the segment
        (B, "Hết."),
    ]
    assert [round(s.seconds, 3) for s in shots] == [1.2, 0.3, 1.0, 0.5]
    assert sum(frame_counts([s.seconds for s in shots])) == 90  # 3 s at 30 fps, nothing lost


# -- the font check -------------------------------------------------------------------------------


def test_characters_the_font_lacks_are_replaced_or_dropped_never_boxed() -> None:
    assert displayable("Tie\u0302\u0301ng Việt") == ("Tiếng Việt", "")  # combining marks → precomposed
    assert displayable("Ｍｉｎｈ nói 😀 你好!") == ("Minh nói !", "😀你好")
    assert displayable("a\u200db\ufe0f c") == ("ab c", "")  # invisible joiners are no loss


# -- GenerateTTS in parts -------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "start"), [(None, 0), ("", 0), ("seg-001", 0), ("seg-061", 60)], ids=str)
def test_a_continuation_token_names_the_next_segment(token: Any, start: int) -> None:
    assert ttsgen.parse_continuation(token, 100) == start


@pytest.mark.parametrize("token", ["seg-x", "61", "seg-101", "seg-000"])
def test_a_bad_continuation_token_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="continuation token|not a GenerateTTS"):
        ttsgen.parse_continuation(token, 100)


async def test_a_stage_answering_a_continuation_token_runs_again_with_it() -> None:
    stages, clock, saved = Stages(), Clock(), []
    events: list[dict[str, Any]] = []

    def tts_in_parts(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(dict(event))
        start = ttsgen.parse_continuation(event.get("continuation_token"), 150)
        end = min(150, start + 60)
        return {
            "job_id": event["job_id"],
            "audio_generated": end == 150,
            "segment_count": end,
            "continuation_token": f"seg-{end + 1:03d}" if end < 150 else None,
        }

    done = await machine(stages, clock, saved, GenerateTTS=tts_in_parts).run(Checkpoint())
    assert done.state == "Done"
    assert [e.get("continuation_token") for e in events] == [None, "seg-061", "seg-121"]
    # saved when GenerateScript ended, then after each of the two parts that went on
    assert [s["state"] for s in saved].count("GenerateTTS") == 3


# -- the script stage's warnings ------------------------------------------------------------------


def test_a_template_fallback_is_recorded_on_the_video_job(
    settings_path: Path, tmp_path: Path, monkeypatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    work = data / "work" / "job-1"
    work.mkdir(parents=True)
    source = {"title": "Rồng - Chương 1", "manga_id": "m", "panels": ["panel-001.png"], "lines": {}}
    (work / "source.json").write_text(json.dumps(source), encoding="utf-8")
    seen: dict[str, Any] = {}

    def fallback(config: Any, **kwargs: Any) -> ScriptResult:
        seen.update(config=config, **kwargs)
        script = {"title": "Rồng", "description": "d", "tags": [], "writer": "template", "model": None}
        script["segments"] = [{"panel": "panel-001.png", "panels": ["panel-001.png"], "text": "Xin chào."}]
        return ScriptResult(script=script, warnings=("the LLM answer did not validate twice",))

    monkeypatch.setattr(script_llm, "write_script", fallback)
    context = RecordingContext()
    assert scriptgen.handler({"job_id": "job-1"}, context)["segment_count"] == 1
    assert context.updates == [("job-1", {"warnings": ["the LLM answer did not validate twice"]})]
    assert seen["config"].base_url == "http://127.0.0.1:9/v1" and seen["config"].vision is False
    assert seen["glossary_path"] == data / "series" / "m" / "glossary.json"


# -- what a published video says ------------------------------------------------------------------


def test_the_description_carries_the_credits_and_says_when_ai_wrote_it() -> None:
    source = {"credits": "MangaDex, nhóm Mây, https://mangadex.org/chapter/c1"}
    llm = publishing.describe({"description": "Tóm tắt.", "writer": "openai"}, source)
    assert llm.startswith("Tóm tắt.\n\nNguồn: MangaDex, nhóm Mây") and "AI" in llm
    assert "AI" not in publishing.describe({"description": "Tóm tắt.", "writer": "template"}, source)


@pytest.mark.parametrize(
    ("now", "at", "expected"),
    [
        ("2026-11-24T10:00:00+00:00", "19:30", "2026-11-24T12:30:00+00:00"),  # 17:00 VN → today
        ("2026-11-24T12:20:00+00:00", "19:30", "2026-11-25T12:30:00+00:00"),  # under 15 min ahead
        ("2026-11-24T18:00:00+00:00", "07:00", "2026-11-25T00:00:00+00:00"),  # 01:00 VN → 07:00
    ],
)
def test_a_publish_time_is_the_next_vietnam_time_at_least_15_minutes_ahead(
    now: str, at: str, expected: str
) -> None:
    assert publishing.publish_time(at, datetime.fromisoformat(now)) == datetime.fromisoformat(expected)
    assert publishing.publish_time(None, datetime.fromisoformat(now)) is None


def test_the_thumbnail_is_a_1280x720_jpeg_filled_by_its_panel_with_the_title(tmp_path: Path) -> None:
    import numpy as np

    (panel,) = sample_chapter.draw_panels(tmp_path / "panels", 1)
    plain = publishing.make_thumbnail(panel, tmp_path / "plain.jpg")
    titled = publishing.make_thumbnail(panel, tmp_path / "thumb.jpg", "Cậu bé và con rồng - Chương 1")
    for made in (plain, titled):
        with Image.open(made) as image:
            assert (image.format, image.size) == ("JPEG", (1280, 720))
        assert made.stat().st_size < 2 * 1024 * 1024
    with Image.open(plain) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels[:, :40].std() > 5 and pixels[:, -40:].std() > 5  # cropped to fill: no flat side bars
    with Image.open(titled) as a, Image.open(plain) as b:
        lower = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))[500:].mean()
        upper = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))[:300].mean()
    assert lower > 20 and upper < 2  # the title and its shade on the lower part only


def test_the_thumbnail_shows_the_most_striking_panel(tmp_path: Path) -> None:
    dull = []
    for n, grey in enumerate((200, 180, 220)):
        path = tmp_path / f"dull-{n}.png"
        Image.new("RGB", (900, 600), (grey, grey, grey)).save(path)
        dull.append(path)
    (vivid,) = sample_chapter.draw_panels(tmp_path / "vivid", 1, size=(900, 600))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    assert publishing.striking_panel([dull[0], broken, vivid, dull[1], dull[2]]) == vivid
    with pytest.raises(ValueError, match="no readable panel"):
        publishing.striking_panel([broken])
