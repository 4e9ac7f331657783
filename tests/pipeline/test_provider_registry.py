"""One registry of backends: every entry loads and speaks its kind's protocol, the settings
take their allowed values from it, and a new speech engine is one class and one line."""

from __future__ import annotations

import importlib
import wave
from pathlib import Path
from typing import Any, ClassVar

import pytest

from services.pipeline.providers import registry
from services.pipeline.settings import EMBEDDED_VALUES, PipelineSettings, load_settings
from services.pipeline.stages import backend_names, ttsgen
from services.pipeline.workspace import Workspace
from services.scheduler.settings import SettingsError

from .stage_context import RecordingContext

METHODS = {"fetch": "take", "script": "write", "tts": "speak", "render": "render", "upload": "publish"}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, table in registry.BACKENDS.items() for n in table])
def test_every_backend_loads_and_has_its_kinds_face(kind: str, name: str) -> None:
    module, _, cls_name = registry.BACKENDS[kind][name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    assert cls.name == name
    assert callable(getattr(cls, METHODS[kind]))
    values = {**EMBEDDED_VALUES, "openai_base_url": "http://127.0.0.1:9/v1"}
    field = registry.SETTINGS.get(kind)
    if field:
        values[field] = name
    described = cls.describe(PipelineSettings.from_values(values))
    assert isinstance(described, str) and described


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("FETCH_SOURCE", "dropbox", "local, mangadex"),
        ("SCRIPT_WRITER", "gpt", "auto, template, openai"),
        ("TTS_ENGINE", "festival", "local, edge-tts"),
        ("UPLOAD_TARGET", "vimeo", "local, youtube"),
    ],
)
def test_the_settings_allow_what_the_registry_has(settings_path: Path, monkeypatch, variable, value, allowed) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable} must be one of {allowed}, got '{value}'"):
        load_settings()


class BeepSpeech:
    """A speech engine a creator might add: one class (and one registry line)."""

    name: ClassVar[str] = "beep"
    segments_per_call: ClassVar[int | None] = None

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        return "beep, one second a segment"

    def speak(self, segments: list[dict[str, Any]], work: Workspace) -> dict[str, Any]:
        entries = []
        for index, segment in enumerate(segments, start=1):
            path = work.audio / f"seg-{index:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                wav.writeframes(b"\0\0" * 8000)
            entries.append({"panel": segment["panel"], "text": segment["text"], "audio": path.name, "seconds": 1.0})
        return {"engine": "beep", "placeholder": True, "segments": entries}


def test_a_new_speech_engine_is_one_class_and_one_registry_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(registry.BACKENDS, "tts", {**registry.BACKENDS["tts"], "beep": f"{__name__}:BeepSpeech"})
    settings = PipelineSettings.from_values({**EMBEDDED_VALUES, "tts_engine": "beep"})  # the settings take it
    assert backend_names(settings)["tts"] == "beep, one second a segment"
    work = Workspace(tmp_path, "job-1")
    work.write("source.json", {"account_id": "default"})
    work.write("script.json", {"segments": [{"panel": "panel-001.png", "text": "Xin chào."}]})
    context = RecordingContext(data_dir=tmp_path, settings=settings)
    assert ttsgen.handler({"job_id": "job-1"}, context)["audio_generated"] is True
    assert work.read("speech.json")["engine"] == "beep" and (work.audio / "seg-001.wav").exists()
