"""ttsgen (GenerateTTS): one narration file per script segment.

Input ``{"job_id"}`` (and ``continuation_token`` when a call goes on where the last one
stopped); output ``{"job_id", "audio_generated": true, "segment_count": N,
"continuation_token": null}`` (stage-functions.md). Files go to ``work/<job_id>/audio/``
and ``speech.json`` lists each one's length, engine and subtitle cues. A segment whose
file already exists (a retried or resumed stage) is not spoken again.

The engine follows the settings of the video's account: the backend ``providers/registry.py``
names for TTS_ENGINE (a ``providers/tts/base.SpeechEngine``):

- ``TTS_ENGINE=local`` (embedded): espeak-ng, else a placeholder tone; a segment's
  subtitle is its whole text;
- ``TTS_ENGINE=edge-tts``: Microsoft Edge's online voices (``providers/tts_edge.py``), with
  word-boundary events grouped into subtitle cues timed to the real speech. When edge-tts
  stays unreachable the stage fails (the state's Retry and Catch apply): it never falls
  back to espeak-ng silently.

A very long chapter is spoken the engine's ``segments_per_call`` segments per call (edge-tts:
60): a call that stops
early answers ``continuation_token: "seg-NNN"`` (the next segment) and the machine runs the
state again with it, so no single call runs into the state's TimeoutSeconds.
"""

from __future__ import annotations

import logging
from typing import Any

from services.pipeline.providers.registry import backend
from services.pipeline.workspace import Workspace

__all__ = ["SEGMENTS_PER_CALL", "handler", "parse_continuation"]

logger = logging.getLogger(__name__)

SEGMENTS_PER_CALL = 60
"""Segments spoken by one edge-tts call (``EdgeSpeech.segments_per_call``)."""


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
    engine = backend("tts", settings, context.data_dir)
    end = len(segments)
    if engine.segments_per_call:
        start = parse_continuation(event.get("continuation_token"), len(segments))
        end = min(len(segments), start + engine.segments_per_call)
    speech = engine.speak(segments[:end], work)
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
    work.write("speech.json", speech)
    return {
        "job_id": job_id,
        "audio_generated": True,
        "segment_count": len(speech["segments"]),
        "continuation_token": None,
    }
