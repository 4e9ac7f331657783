"""The embedded voice (TTS_ENGINE=local): espeak-ng's Vietnamese, else a placeholder tone.

A segment's subtitle is its whole text. Without espeak-ng the narration is a tone, said so
in ``speech.json`` (``placeholder``) and the log.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.tts import tts_local
from services.pipeline.workspace import Workspace

__all__ = ["LocalSpeech"]

logger = logging.getLogger(__name__)


class LocalSpeech:
    """A SpeechEngine over ``tts_local`` (espeak-ng or a tone)."""

    name: ClassVar[str] = "local"
    segments_per_call: ClassVar[int | None] = None

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        if tts_local.engine_name() == "espeak-ng":
            return "espeak-ng (vi) (TTS_ENGINE=local)"
        return "placeholder tone (TTS_ENGINE=local and espeak-ng not installed)"

    def speak(self, segments: list[dict[str, Any]], work: Workspace) -> dict[str, Any]:
        engine = tts_local.engine_name()
        entries = []
        for index, segment in enumerate(segments, start=1):
            path = work.audio / f"seg-{index:03d}.wav"
            if path.exists():
                seconds = _wav_seconds(path)
            else:
                seconds = tts_local.synthesize(segment["text"], path, engine=engine).seconds
            entries.append(
                {
                    "panel": segment["panel"],
                    "panels": segment.get("panels") or [segment["panel"]],
                    "text": segment["text"],
                    "audio": path.name,
                    "seconds": round(seconds, 3),
                }
            )
        placeholder = engine == "tone"
        if placeholder:
            logger.warning(
                "narration is a placeholder tone (install espeak-ng for a voice)",
                extra={"job_id": work.job_id, "stage": "GenerateTTS"},
            )
        return {"engine": engine, "placeholder": placeholder, "segments": entries}


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()
