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

    def need(ok: bool, figure: str, value: Any, limit: str) -> None:
        if not ok:
            out.append(Failure(figure, value, limit))

    for name in ("video_codec", "video_profile", "pixel_format", "audio_codec", "audio_rate"):
        need(f.get(name) == LIMITS[name], name, f.get(name), str(LIMITS[name]))
    need(bool(f.get("faststart")), "faststart", f.get("faststart"), "true (the index before the media)")
    frame = 1 / (f.get("fps") or 30)
    drift = f.get("end_difference_seconds")
    need(drift is not None and drift <= frame + 1e-6, "end_difference_seconds", drift,
         f"<= one frame ({frame:.3f} s)")
    gap = f.get("keyframe_gap_seconds")
    need(gap is not None and gap <= LIMITS["keyframe_gap_seconds"], "keyframe_gap_seconds", gap,
         f"<= {LIMITS['keyframe_gap_seconds']:g} s")
    low, high = LIMITS["loudness_lufs"]
    loud = f.get("loudness_lufs")
    need(loud is not None and low <= loud <= high, "loudness_lufs", loud, f"{low:g} to {high:g} LUFS")
    peak = f.get("true_peak_dbtp")
    need(peak is not None and peak <= LIMITS["true_peak_dbtp"], "true_peak_dbtp", peak,
         f"<= {LIMITS['true_peak_dbtp']:g} dBTP")
    if (f.get("duration_seconds") or 0) >= LIMITS["cut_rate_min_seconds"]:
        low, high = LIMITS["cuts_per_minute"]
        rate = f.get("cuts_per_minute")
        need(rate is not None and low <= rate <= high, "cuts_per_minute", rate, f"{low:g} to {high:g}")
    shot = f.get("longest_shot_seconds")
    need(shot is not None and shot <= LIMITS["longest_shot_seconds"], "longest_shot_seconds", shot,
         f"<= {LIMITS['longest_shot_seconds']:g} s")
    for name, limit in (("black_seconds", LIMITS["black_seconds"]), ("frozen_seconds", LIMITS["frozen_seconds"])):
        value = f.get(name)
        need(value is not None and value <= limit, name, value, f"<= {limit:g} s")
    missing = f.get("missing_glyphs") or []
    need(not missing, "missing_glyphs", "".join(missing), "none (every subtitle character in the font)")
    return out
