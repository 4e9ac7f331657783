"""The online voice (TTS_ENGINE=edge-tts): Microsoft Edge's neural voices, with cues.

Word-boundary events become subtitle cues timed to the real speech. When edge-tts stays
unreachable the stage fails (its Retry and Catch apply): it never falls back to espeak-ng
silently. A long chapter is spoken ``segments_per_call`` segments per stage call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.providers.tts.tts_edge import EdgeVoice, speak_segments
from services.pipeline.workspace import Workspace

__all__ = ["EdgeSpeech"]


class EdgeSpeech:
    """A SpeechEngine over ``tts_edge.speak_segments``."""

    name: ClassVar[str] = "edge-tts"
    segments_per_call: ClassVar[int | None] = 60
    """About 3-6 minutes of work at 2 segments at a time."""

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.voice = EdgeVoice(
            voice=settings.tts_voice,
            fallback_voice=settings.tts_fallback_voice,
            rate=settings.tts_rate,
            pitch=settings.tts_pitch,
            concurrency=settings.tts_concurrency,
        )

    @classmethod
    def describe(cls, settings: Any) -> str:
        fallback = f" (fallback {settings.tts_fallback_voice})" if settings.tts_fallback_voice != settings.tts_voice else ""
        return f"edge-tts, voice {settings.tts_voice}{fallback}, rate {settings.tts_rate}, pitch {settings.tts_pitch}"

    def speak(self, segments: list[dict[str, Any]], work: Workspace) -> dict[str, Any]:
        texts = [segment["text"] for segment in segments]
        spoken = asyncio.run(speak_segments(texts, work.audio, self.voice, job_id=work.job_id))
        entries = [
            {
                "panel": segment["panel"],
                "panels": segment.get("panels") or [segment["panel"]],
                "text": segment["text"],
                "audio": item.path.name,
                "seconds": round(item.seconds, 3),
                "voice": item.voice,
                "cues": [cue.as_json() for cue in item.cues],
            }
            for segment, item in zip(segments, spoken, strict=True)
        ]
        return {"engine": "edge-tts", "placeholder": False, "segments": entries}
