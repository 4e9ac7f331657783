"""Sidechain ducking of the music bed under the voice (pure: numpy arrays in and out).

The narration is the sidechain: where it speaks, the bed's gain goes down ``DUCK_DB``
(13.5 dB, the middle of the 12-15 dB a voice-over needs to stay clear), and where it
pauses the bed comes back up. Done on 10 ms frames of the voice:

1. **Speech.** A frame is speech when its RMS lies within ``SPEECH_RANGE_DB`` of the
   voice's loud frames (the 95th percentile of the frame levels) and above
   ``SILENCE_DBFS``. The voice's own level does not matter: a quiet track ducks the same.
2. **Hold.** Gaps between words shorter than ``HOLD_SECONDS`` count as speech, so the bed
   does not pump up between two words.
3. **Attack and release.** The gain follows the target (0 dB or -DUCK_DB) with one-pole
   smoothing: ``ATTACK_SECONDS`` going down (the bed is out of the way by the first
   syllable's body), ``RELEASE_SECONDS`` coming back (a gentle swell in the pauses).

``frame_gains_db`` gives the gain per frame, ``sample_gains`` spreads it over the samples
(linear between frame centres); ``narration_audio`` applies it to the bed and mixes.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ATTACK_SECONDS",
    "DUCK_DB",
    "FRAME_SECONDS",
    "HOLD_SECONDS",
    "RELEASE_SECONDS",
    "frame_gains_db",
    "frame_levels_db",
    "frame_size",
    "sample_gains",
    "speech_frames",
]

FRAME_SECONDS = 0.01
DUCK_DB = 13.5
SPEECH_RANGE_DB = 30.0
SILENCE_DBFS = -60.0
HOLD_SECONDS = 0.3
ATTACK_SECONDS = 0.05
RELEASE_SECONDS = 0.4


def frame_levels_db(voice: np.ndarray, rate: int) -> np.ndarray:
    """The RMS level (dBFS) of each 10 ms frame of ``voice`` (mono float samples; a chunk
    of a longer track should hold whole frames: ``frame_size(rate)`` samples each)."""
    size = frame_size(rate)
    count = math.ceil(len(voice) / size)
    padded = np.zeros(count * size, dtype=np.float32)
    padded[: len(voice)] = voice
    rms = np.sqrt(np.mean(np.square(padded.reshape(count, size), dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


def frame_size(rate: int) -> int:
    """Samples in a frame at ``rate``."""
    return max(1, round(rate * FRAME_SECONDS))


def speech_frames(levels_db: np.ndarray) -> np.ndarray:
    """Whether each frame (its level from ``frame_levels_db``) is speech."""
    if len(levels_db) == 0:
        return np.zeros(0, dtype=bool)
    loud = np.percentile(levels_db, 95)
    return (levels_db > loud - SPEECH_RANGE_DB) & (levels_db > SILENCE_DBFS)


def frame_gains_db(speech: np.ndarray, duck_db: float = DUCK_DB) -> np.ndarray:
    """The bed's gain per frame, in dB (0 in the pauses, -``duck_db`` under speech)."""
    hold = max(0, round(HOLD_SECONDS / FRAME_SECONDS))
    held = speech.copy()
    if hold and speech.any():  # a gap shorter than the hold between two speech frames is speech
        positions = np.flatnonzero(speech)
        for a, b in zip(positions, positions[1:], strict=False):
            if 1 < b - a <= hold + 1:
                held[a:b] = True
    down = 1 - math.exp(-FRAME_SECONDS / ATTACK_SECONDS)
    up = 1 - math.exp(-FRAME_SECONDS / RELEASE_SECONDS)
    gains = np.empty(len(held), dtype=np.float64)
    gain = 0.0
    for n, talking in enumerate(held):
        target = -duck_db if talking else 0.0
        gain += (target - gain) * (down if target < gain else up)
        gains[n] = gain
    return gains


def sample_gains(gains_db: np.ndarray, start: int, count: int, rate: int) -> np.ndarray:
    """Linear gains for samples ``start`` .. ``start + count`` (interpolated between the
    centres of the frames ``gains_db`` holds)."""
    size = rate * FRAME_SECONDS
    centres = (np.arange(len(gains_db)) + 0.5) * size
    positions = np.arange(start, start + count, dtype=np.float64)
    return np.power(10.0, np.interp(positions, centres, gains_db) / 20.0).astype(np.float32)
