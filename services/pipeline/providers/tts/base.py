"""SpeechEngine: the narration audio of a script (the GenerateTTS stage's backend).

``speak(segments, work)`` writes one WAV per segment into ``work.audio``
(``seg-001.wav`` ...; a file already there is not spoken again) and returns what the
stage writes to ``speech.json``: ``{"engine", "placeholder", "segments": [{"panel",
"panels", "text", "audio", "seconds", ["voice", "cues"]}]}``. ``segments_per_call``
bounds one stage call (None: all at once): the stage speaks that many more per call and
hands the machine a continuation token for the rest.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from services.pipeline.workspace import Workspace

__all__ = ["SpeechEngine"]


class SpeechEngine(Protocol):
    name: ClassVar[str]
    segments_per_call: ClassVar[int | None]

    @classmethod
    def describe(cls, settings: Any) -> str: ...

    def speak(self, segments: list[dict[str, Any]], work: Workspace) -> dict[str, Any]: ...
