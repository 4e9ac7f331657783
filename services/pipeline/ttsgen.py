"""ttsgen (GenerateTTS): one narration file per script segment.

Input ``{"job_id"}``; output ``{"job_id", "audio_generated": true, "segment_count": N,
"continuation_token": null}`` (stage-functions.md). Files go to ``work/<job_id>/audio/``
and ``speech.json`` lists each one's length and engine. A segment whose file already
exists (a retried or resumed stage) is not spoken again.
"""

from __future__ import annotations

import logging
import wave
from typing import Any

from .providers import tts_local
from .workspace import Workspace, data_dir_from_env

__all__ = ["handler"]

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GenerateTTS: the seed's ttsgen JSON out."""
    job_id = str(event["job_id"])
    work = Workspace(data_dir_from_env(), job_id)
    script = work.read("script.json")
    engine = tts_local.engine_name()
    entries = []
    for index, segment in enumerate(script["segments"], start=1):
        path = work.audio / f"seg-{index:03d}.wav"
        if path.exists():
            with wave.open(str(path), "rb") as wav:
                seconds = wav.getnframes() / wav.getframerate()
        else:
            seconds = tts_local.synthesize(segment["text"], path, engine=engine).seconds
        entries.append(
            {
                "panel": segment["panel"],
                "text": segment["text"],
                "audio": path.name,
                "seconds": round(seconds, 3),
            }
        )
    placeholder = engine == "tone"
    if placeholder:
        logger.warning(
            "narration is a placeholder tone (install espeak-ng for a voice)",
            extra={"job_id": job_id, "stage": "GenerateTTS"},
        )
    work.write("speech.json", {"engine": engine, "placeholder": placeholder, "segments": entries})
    return {
        "job_id": job_id,
        "audio_generated": True,
        "segment_count": len(entries),
        "continuation_token": None,
    }
