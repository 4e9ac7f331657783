"""The limits a video must keep to be published, and the verdict on its figures (pure).

What YouTube takes best and what a viewer sits through: H.264 High in yuv420p with AAC
at 48 kHz and the index first (``faststart``), sound and picture ending together (within
one frame), a keyframe at least every 10 s, the mix at -14 LUFS integrated (±1) with the
true peak at or below -1 dBTP, 12 to 22 cuts a minute and no shot over 18 s (a TTS
slideshow holds one picture far longer), no black or frozen stretch over 3 s, and every
character of the subtitles in the font. The cut rate is judged on videos of 20 s or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LIMITS", "Failure", "judge"]

LIMITS: dict[str, Any] = {
    "video_codec": "h264",
    "video_profile": "High",
    "pixel_format": "yuv420p",
    "audio_codec": "aac",
    "audio_rate": 48000,
    "keyframe_gap_seconds": 10.0,
    "loudness_lufs": (-15.0, -13.0),
    "true_peak_dbtp": -1.0,
    "cuts_per_minute": (12.0, 22.0),
    "cut_rate_min_seconds": 20.0,
    "longest_shot_seconds": 18.0,
    "black_seconds": 3.0,
    "frozen_seconds": 3.0,
}


@dataclass(frozen=True)
class Failure:
    """One figure outside its limit: which, what it is, what it must be."""

    figure: str
    value: Any
    limit: str

    def __str__(self) -> str:
        return f"{self.figure} is {self.value}, must be {self.limit}"


def judge(figures: dict[str, Any]) -> list[Failure]:
    """Every figure of ``measure.Figures.to_dict()`` outside its limit (empty: it passes)."""
    f, out = figures, []

    def need(ok: bool, figure: str, limit: str) -> None:
        if not ok:
            out.append(Failure(figure, f.get(figure), limit))

    def at_most(figure: str, limit: float, unit: str) -> None:
        value = f.get(figure)
        need(value is not None and value <= limit + 1e-6, figure, f"<= {limit:g} {unit}".rstrip())

    def within(figure: str, unit: str) -> None:
        low, high = LIMITS[figure]
        value = f.get(figure)
        need(value is not None and low <= value <= high, figure, f"{low:g} to {high:g} {unit}".rstrip())

    for name in ("video_codec", "video_profile", "pixel_format", "audio_codec", "audio_rate"):
        need(f.get(name) == LIMITS[name], name, str(LIMITS[name]))
    need(bool(f.get("faststart")), "faststart", "true (the index before the media)")
    at_most("end_difference_seconds", 1 / (f.get("fps") or 30), "s (one frame)")
    at_most("keyframe_gap_seconds", LIMITS["keyframe_gap_seconds"], "s")
    within("loudness_lufs", "LUFS")
    at_most("true_peak_dbtp", LIMITS["true_peak_dbtp"], "dBTP")
    if (f.get("duration_seconds") or 0) >= LIMITS["cut_rate_min_seconds"]:
        within("cuts_per_minute", "")
    for name in ("longest_shot_seconds", "black_seconds", "frozen_seconds"):
        at_most(name, LIMITS[name], "s")
    missing = f.get("missing_glyphs") or []
    if missing:
        out.append(Failure("missing_glyphs", "".join(missing), "none (every subtitle character in the font)"))
    return out
