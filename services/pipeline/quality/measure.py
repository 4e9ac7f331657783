"""Measure a video file: the figures ``gate.judge`` holds to its limits.

- The streams (PyAV): the video's codec, profile and pixel format, its frame rate; the
  audio's codec and sample rate; where each track ends (the last packet's end).
- ``faststart``: the MP4's top-level boxes, read from the file: ``moov`` before ``mdat``.
- Keyframes: the longest gap between two keyframes, or from the last one to the end.
- Loudness: ffmpeg's ``ebur128`` filter (the bundled binary of imageio-ffmpeg): the
  integrated loudness in LUFS and the true peak in dBTP.
- The pictures, decoded in the same pass over the file at 192×108 in grey: a cut is a
  frame that differs from the one before by more than ``CUT_DIFF`` grey levels on average
  (at 96×54; two panels of one scene, drawn alike, differ by 6 or more; a new subtitle
  line by under 1, a slow push-in by 1 or 2); a black stretch is frames darker than
  ``BLACK_LEVEL``; a frozen one, frames that all stay within ``FROZEN_DIFF`` grey levels of
  the stretch's first frame in every tile of 16×12 (a new subtitle line changes its tiles
  by 7 or more, a push-in moves them by more within a few frames; the encoder's own
  flicker on a held picture stays near 0.1). A shot runs from a cut to the next (or the
  start, the end).
- Glyphs: the subtitle's characters the font (Be Vietnam Pro by default) has no glyph for.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
import numpy as np

__all__ = ["BLACK_LEVEL", "CUT_DIFF", "FROZEN_DIFF", "Figures", "measure", "missing_glyphs"]

CUT_DIFF = 5.0
FROZEN_DIFF = 1.0
BLACK_LEVEL = 24.0
_SMALL = (192, 108)
_TILE = (12, 16)  # rows × columns of a tile of the small frame


@dataclass
class Figures:
    """What ``measure`` found (seconds, LUFS, dBTP; None where a track is missing)."""

    duration_seconds: float = 0.0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str | None = None
    video_profile: str | None = None
    pixel_format: str | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None
    faststart: bool = False
    video_end_seconds: float | None = None
    audio_end_seconds: float | None = None
    end_difference_seconds: float | None = None
    keyframe_gap_seconds: float | None = None
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None
    cuts: int = 0
    cuts_per_minute: float | None = None
    longest_shot_seconds: float | None = None
    black_seconds: float | None = None
    frozen_seconds: float | None = None
    missing_glyphs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(path: Path, *, subtitles: str = "", font: Path | None = None) -> Figures:
    """The figures of the video at ``path``. ValueError if it is not a video file."""
    figures = Figures(faststart=_faststart(path))
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise ValueError(f"{path} is not a video file this can read: {exc}") from None
    with container:
        video = next(iter(container.streams.video), None)
        audio = next(iter(container.streams.audio), None)
        if video is None:
            raise ValueError(f"{path} has no video track")
        context = video.codec_context
        figures.video_codec, figures.video_profile = context.name, context.profile
        figures.pixel_format = context.pix_fmt
        figures.width, figures.height = context.width, context.height
        figures.fps = float(video.average_rate or video.guessed_rate or 30)
        if audio is not None:
            figures.audio_codec, figures.audio_rate = audio.codec_context.name, audio.codec_context.sample_rate
        _scan(container, video, audio, figures)
    figures.loudness_lufs, figures.true_peak_dbtp = _loudness(path) if audio is not None else (None, None)
    figures.missing_glyphs = missing_glyphs(subtitles, font)
    return figures


def missing_glyphs(text: str, font: Path | None = None) -> list[str]:
    """The characters of ``text`` (spaces aside) the font has no glyph for, in order."""
    if not text:
        return []
    from fontTools.ttLib import TTFont

    from services.pipeline.providers.fonts import font_path

    cmap = TTFont(str(font or font_path("SemiBold")), lazy=True).getBestCmap()
    return list(dict.fromkeys(ch for ch in text if not ch.isspace() and ord(ch) not in cmap))


def _faststart(path: Path) -> bool:
    """Whether the MP4's ``moov`` box comes before its ``mdat`` (top-level boxes)."""
    order = []
    try:
        with path.open("rb") as handle:
            size_total = path.stat().st_size
            offset = 0
            while offset + 8 <= size_total and len(order) < 64:
                handle.seek(offset)
                header = handle.read(16)
                size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if size == 1:
                    size = int.from_bytes(header[8:16], "big")
                elif size == 0:
                    size = size_total - offset
                if size < 8:
                    break
                order.append(kind)
                offset += size
    except OSError:
        return False
    return b"moov" in order and b"mdat" in order and order.index(b"moov") < order.index(b"mdat")


def _scan(container: Any, video: Any, audio: Any, figures: Figures) -> None:
    """One pass over the packets: where each track ends, the keyframes, and every video
    frame decoded at 96×54 grey for the cuts, shots, black and frozen stretches."""
    ends: dict[str, float] = {}
    keyframes: list[float] = []
    pictures = _Pictures(1 / (figures.fps or 30))
    video.thread_type = "AUTO"
    streams = [s for s in (video, audio) if s is not None]
    for packet in container.demux(*streams):
        if packet.stream is video:
            for frame in packet.decode():  # the flushing packet (no pts) gives the last frames
                pictures.add(frame)
        if packet.pts is None:
            continue
        start = float(packet.pts * packet.time_base)
        end = start + float((packet.duration or 0) * packet.time_base)
        kind = "video" if packet.stream is video else "audio"
        ends[kind] = max(ends.get(kind, 0.0), end)
        if kind == "video" and packet.is_keyframe:
            keyframes.append(start)
    figures.video_end_seconds = ends.get("video")
    figures.audio_end_seconds = ends.get("audio")
    figures.duration_seconds = max(ends.values(), default=0.0)
    if figures.video_end_seconds is not None and figures.audio_end_seconds is not None:
        figures.end_difference_seconds = round(abs(figures.video_end_seconds - figures.audio_end_seconds), 4)
    if keyframes and figures.video_end_seconds is not None:
        marks = sorted(keyframes) + [figures.video_end_seconds]
        figures.keyframe_gap_seconds = round(max(b - a for a, b in zip([0.0, *marks[:-1]], marks)), 3)
    pictures.report(figures)


class _Pictures:
    """Cuts, shots, black and frozen stretches, frame by frame at 192×108 grey."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.cuts: list[float] = []
        self.black = self.frozen = self.longest_black = self.longest_frozen = 0.0
        self.previous: np.ndarray | None = None
        self.anchor: np.ndarray | None = None  # the first frame of the current still stretch
        self.last = 0.0

    def add(self, frame: Any) -> None:
        small = frame.reformat(width=_SMALL[0], height=_SMALL[1], format="gray").to_ndarray().astype(np.int16)
        when = float(frame.time or 0.0)
        self.last = max(self.last, when)
        self.black = self.black + self.step if small.mean() < BLACK_LEVEL else 0.0
        self.longest_black = max(self.longest_black, self.black)
        if self.previous is not None:
            if _coarse(np.abs(small - self.previous)).mean() > CUT_DIFF:
                self.cuts.append(when)
        if self.anchor is not None and _tiles(np.abs(small - self.anchor)).max() < FROZEN_DIFF:
            self.frozen += self.step
            self.longest_frozen = max(self.longest_frozen, self.frozen)
        else:
            self.anchor, self.frozen = small, 0.0
        self.previous = small

    def report(self, figures: Figures) -> None:
        end = max(self.last + self.step, figures.video_end_seconds or 0.0)
        marks = [0.0, *self.cuts, end]
        figures.cuts = len(self.cuts)
        figures.longest_shot_seconds = round(max(b - a for a, b in zip(marks, marks[1:])), 3)
        figures.cuts_per_minute = round(len(self.cuts) * 60 / end, 2) if end > 0 else None
        # a stretch of n frames lasts n frames: the first frozen frame repeats the one before it
        figures.black_seconds = round(self.longest_black, 3)
        figures.frozen_seconds = round(self.longest_frozen + (self.step if self.longest_frozen else 0.0), 3)


def _coarse(difference: np.ndarray) -> np.ndarray:
    """A 192×108 difference averaged down to 96×54 (2×2 blocks)."""
    h, w = difference.shape
    return difference[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _tiles(difference: np.ndarray) -> np.ndarray:
    """The mean of a 192×108 difference over each tile."""
    rows, cols = _TILE
    h, w = difference.shape
    whole = difference[: h // rows * rows, : w // cols * cols]
    return whole.reshape(h // rows, rows, w // cols, cols).mean(axis=(1, 3))


_INTEGRATED = re.compile(r"I:\s+(-?[\d.]+|-inf)\s+LUFS")
_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf)\s+dBFS")


def _loudness(path: Path) -> tuple[float | None, float | None]:
    """Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's ebur128 filter."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-vn",
         "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, timeout=600,
    )
    summary = done.stderr[done.stderr.rfind("Summary:"):]
    loud, peak = _INTEGRATED.search(summary), _PEAK.search(summary)

    def number(match: re.Match[str] | None) -> float | None:
        if match is None:
            return None
        return float("-inf") if match.group(1) == "-inf" else float(match.group(1))

    return number(loud), number(peak)
