"""The embedded voice: espeak-ng's Vietnamese voice when installed, else a placeholder tone.

``synthesize(text, output)`` writes a WAV and says which engine made it. Without espeak-ng
the "voice" is a soft tone, one short beep per word, so the video's timing still follows
the text; the result is marked ``placeholder`` and the pipeline says so in the log and in
the video's metadata. Install Debian's ``espeak-ng`` for a real (robotic) voice; the real
backend (edge-tts) comes with the real-backends issue.
"""

from __future__ import annotations

import array
import math
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ESPEAK_VOICE", "Speech", "engine_name", "synthesize", "tone_seconds"]

ESPEAK_VOICE = "vi"
_RATE = 24_000
_WORD_SECONDS = 0.30
_GAP_SECONDS = 0.08
_TAIL_SECONDS = 0.5


@dataclass(frozen=True)
class Speech:
    """A narration file: where, how long, and which engine made it."""

    path: Path
    seconds: float
    engine: str
    placeholder: bool


def engine_name() -> str:
    """The engine ``synthesize`` will use here: ``espeak-ng`` or ``tone``."""
    return "espeak-ng" if shutil.which("espeak-ng") else "tone"


def tone_seconds(text: str) -> float:
    """Length of the placeholder tone for ``text`` (it follows the number of words)."""
    words = max(1, len(text.split()))
    return round(words * (_WORD_SECONDS + _GAP_SECONDS) + _TAIL_SECONDS, 3)


def synthesize(text: str, output: Path, *, engine: str | None = None) -> Speech:
    """Speak ``text`` into the WAV ``output``."""
    if not text.strip():
        raise ValueError("nothing to say: empty narration text")
    chosen = engine or engine_name()
    output.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "espeak-ng":
        _espeak(text, output)
    elif chosen == "tone":
        _tone(text, output)
    else:
        raise ValueError(f"unknown TTS engine {chosen!r} (espeak-ng or tone)")
    with wave.open(str(output), "rb") as wav:
        seconds = wav.getnframes() / wav.getframerate()
    return Speech(path=output, seconds=seconds, engine=chosen, placeholder=chosen == "tone")


def _espeak(text: str, output: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed")
    done = subprocess.run(
        [espeak, "-v", ESPEAK_VOICE, "-s", "150", "-w", str(output), text],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(f"espeak-ng failed: {done.stderr.strip()[-200:]}")


def _tone(text: str, output: Path) -> None:
    samples = array.array("h")
    words = max(1, len(text.split()))
    beep, gap = int(_WORD_SECONDS * _RATE), int(_GAP_SECONDS * _RATE)
    for word in range(words):
        pitch = 196.0 if word % 3 else 233.0
        for n in range(beep):
            envelope = math.sin(math.pi * n / beep)  # soft attack and release: no clicks
            samples.append(int(6000 * envelope * math.sin(2 * math.pi * pitch * n / _RATE)))
        samples.extend([0] * gap)
    samples.extend([0] * int(_TAIL_SECONDS * _RATE))
    with wave.open(str(output), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_RATE)
        wav.writeframes(samples.tobytes())
