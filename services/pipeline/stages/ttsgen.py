"""ttsgen (GenerateTTS): one narration file per script segment.

Input ``{"job_id"}`` (and ``continuation_token`` when a call goes on where the last one
stopped); output ``{"job_id", "audio_generated": true, "segment_count": N,
"continuation_token": null}`` (stage-functions.md). Files go to ``work/<job_id>/audio/``
and ``speech.json`` lists each one's length, engine and subtitle cues. A segment whose
file already exists (a retried or resumed stage) is not spoken again.

The engine follows the settings of the video's account (``settings.py``):

- ``TTS_ENGINE=local`` (embedded): espeak-ng, else a placeholder tone; a segment's
  subtitle is its whole text;
- ``TTS_ENGINE=edge-tts``: Microsoft Edge's online voices (``providers/tts_edge.py``), with
  word-boundary events grouped into subtitle cues timed to the real speech. When edge-tts
  stays unreachable the stage fails (the state's Retry and Catch apply): it never falls
  back to espeak-ng silently.

A very long chapter is spoken ``SEGMENTS_PER_CALL`` segments per call: a call that stops
early answers ``continuation_token: "seg-NNN"`` (the next segment) and the machine runs the
state again with it, so no single call runs into the state's TimeoutSeconds.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path
from typing import Any

from services.pipeline.providers.tts import tts_local
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

__all__ = ["SEGMENTS_PER_CALL", "handler", "parse_continuation"]

logger = logging.getLogger(__name__)

SEGMENTS_PER_CALL = 60
"""Segments spoken by one edge-tts call: about 3-6 minutes of work at 2 at a time."""


def parse_continuation(token: object, total: int) -> int:
    """The 0-based segment a ``seg-NNN`` continuation token points at; ValueError if not one."""
    if token in (None, ""):
        return 0
    text = str(token)
    if not text.startswith("seg-") or not text[4:].isdigit():
        raise ValueError(f"not a GenerateTTS continuation token: {text!r}")
    start = int(text[4:]) - 1
    if not 0 <= start < total:
        raise ValueError(f"continuation token {text!r} is past the script's {total} segments")
    return start


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GenerateTTS: the seed's ttsgen JSON out."""
    job_id = str(event["job_id"])
    work = Workspace(context.data_dir, job_id)
    script = work.read("script.json")
    source = work.read("source.json")
    settings = context.settings_for(str(source.get("account_id") or "default"))
    segments = script["segments"]
    if settings.tts_engine == "edge-tts":
        start = parse_continuation(event.get("continuation_token"), len(segments))
        end = min(len(segments), start + SEGMENTS_PER_CALL)
        spoken = _speak_edge(settings, work, segments[:end], job_id)
        if end < len(segments):
            logger.info(
                "spoken part of a long chapter; the state goes on",
                extra={"job_id": job_id, "stage": "GenerateTTS", "spoken": end, "segments": len(segments)},
            )
            return {
                "job_id": job_id,
                "audio_generated": False,
                "segment_count": end,
                "continuation_token": f"seg-{end + 1:03d}",
            }
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
        speech = {"engine": "edge-tts", "placeholder": False, "segments": entries}
    else:
        speech = _speak_local(work, segments, job_id)
    work.write("speech.json", speech)
    return {
        "job_id": job_id,
        "audio_generated": True,
        "segment_count": len(speech["segments"]),
        "continuation_token": None,
    }


def _speak_edge(
    settings: PipelineSettings, work: Workspace, segments: list[dict[str, Any]], job_id: str
) -> list[Any]:
    from services.pipeline.providers.tts.tts_edge import (  # edge-tts loads only when it is used
        EdgeVoice,
        speak_segments,
    )

    voice = EdgeVoice(
        voice=settings.tts_voice,
        fallback_voice=settings.tts_fallback_voice,
        rate=settings.tts_rate,
        pitch=settings.tts_pitch,
        concurrency=settings.tts_concurrency,
    )
    texts = [segment["text"] for segment in segments]
    return asyncio.run(speak_segments(texts, work.audio, voice, job_id=job_id))


def _speak_local(work: Workspace, segments: list[dict[str, Any]], job_id: str) -> dict[str, Any]:
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
            extra={"job_id": job_id, "stage": "GenerateTTS"},
        )
    return {"engine": engine, "placeholder": placeholder, "segments": entries}


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()
