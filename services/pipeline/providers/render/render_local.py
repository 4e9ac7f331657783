"""The local renderer: panels + narration → an MP4 YouTube takes as it is.

What it makes: H.264 (yuv420p, High profile) at 30 fps, AAC-LC 48 kHz mono, the moov atom
first (``faststart``), 1920×1080 (or 1080×1920 for Shorts). The shots come from
``rhythm.plan_shots``: a cut at each panel, more framings for a panel shown long (its
close views), a new subtitle line at each cue or page, and with MOTION=push a short
push-in at each framing. Each panel is scaled to fill the frame as far as its shape
allows, over a blurred, darkened copy of itself, with the subtitle at the bottom of the
safe area, below the panel when its shape leaves room (``framing.py``). Each distinct
picture is composited once (``compositor.py``: the shots of a framing share their
backdrop and panel, only the line changes) and converted to YUV once, on a helper thread
a few pictures ahead of the encoder, so the two overlap on two cores. This module
encodes and muxes.

Encoding a still picture for seconds repeats the same work frame after frame, so the
default encoder does it once: it encodes a GOP of GOP_FRAMES (5) frames of the picture
(an IDR frame and 4 P-frames, no B-frames, so the GOP decodes on its own) and muxes those
packets again with new timestamps as many times as the picture's length allows, then the
GOP's first packets for the remaining frames (a prefix of a closed GOP is a closed GOP),
which lands each cut on its exact frame. A keyframe comes every 5 frames (1/6 s): the
short GOP halves the encoding of a picture shown for a single subtitle line, at about
2.4 Mb/s at 1080p. A push-in's moving frames are encoded one by one (an IDR at the cut,
then P-frames), as every moving frame must be. ``encoder="frames"`` encodes every frame
instead (keyframe every 2 s), the plain way, kept for comparison.

Timing: a segment ends at frame round(end_seconds × fps) of the whole track, where
end_seconds is the running sum of the audio lengths. Rounding the running sum, not each
segment, carries the rounding forward, so the picture never drifts from the voice and the
video ends within half a frame of the audio.

Sound: ``narration_audio`` concatenates the narration, brings it to -14 LUFS integrated
(YouTube's playback target) and encodes AAC 48 kHz, in ffmpeg processes (the binary from
imageio-ffmpeg: no system ffmpeg needed) running on the other core while this process
encodes the pictures; the two tracks are then joined by stream copy with the moov atom
first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import imageio_ffmpeg
from PIL import Image

from services.pipeline.providers.render.compositor import FPS, pictures
from services.pipeline.providers.render.narration_audio import NarrationJob
from services.pipeline.providers.render.rhythm import (
    Beat,
    Shot,
    plan_shots,
)

__all__ = [
    "LANDSCAPE",
    "PORTRAIT",
    "Pieces",
    "RenderResult",
    "Segment",
    "Shot",
    "frame_counts",
    "piece_groups",
    "plan",
    "plan_digest",
    "render_video",
]

LANDSCAPE = (1920, 1080)
PORTRAIT = (1080, 1920)
KEYFRAME_SECONDS = 2
PIECE_SECONDS = 30.0  # a piece of a resumable render (see render_video's ``pieces``)
GOP_FRAMES = 5  # a repeated GOP: a keyframe every 5 frames (1/6 s) in the default encoder


@dataclass(frozen=True)
class Segment:
    """One narration segment: its panel(s), its subtitle and the WAV of its narration.

    ``cues`` are ``(start, end, text)`` in seconds from the segment's start (word-timed
    lines from the TTS): each line shows from its start until the next one's, the first from
    the segment's start. Without cues the ``subtitle`` is paged at the reading pace
    (``rhythm.plan_shots``). ``more_panels`` follow ``panel`` when the narration covers a group of panels: the
    segment's time is shared equally between them.
    """

    panel: Path
    subtitle: str
    audio: Path
    cues: tuple[tuple[float, float, str], ...] = ()
    more_panels: tuple[Path, ...] = ()


@dataclass(frozen=True)
class RenderResult:
    """What was made: the file, its length and its frame count."""

    path: Path
    duration_seconds: float
    frames: int
    size: tuple[int, int]


def frame_counts(durations: Sequence[float], fps: int = FPS) -> list[int]:
    """Frames per segment: segment i ends at round(sum(durations[:i+1]) × fps).

    Carrying the rounding forward keeps every cut within half a frame of its audio.
    """
    counts, elapsed, shown = [], 0.0, 0
    for duration in durations:
        if duration < 0:
            raise ValueError("a segment cannot last less than nothing")
        elapsed += duration
        end = round(elapsed * fps)
        counts.append(end - shown)
        shown = end
    return counts


def plan(
    segments: Sequence[Segment],
    durations: Sequence[float],
    size: tuple[int, int] = LANDSCAPE,
    *,
    rtl: bool = False,
    motion: str = "none",
) -> list[Shot]:
    """The shots of ``segments`` lasting ``durations`` (``rhythm.plan_shots``; the panels'
    sizes are read from their files' headers)."""
    sizes: dict[Path, tuple[int, int]] = {}

    def sized(path: Path) -> tuple[Path, tuple[int, int]]:
        if path not in sizes:
            with Image.open(path) as image:
                sizes[path] = image.size
        return path, sizes[path]

    beats = [
        Beat(tuple(sized(p) for p in (s.panel, *s.more_panels)), seconds, s.subtitle, s.cues)
        for s, seconds in zip(segments, durations, strict=True)
    ]
    return plan_shots(beats, size, rtl=rtl, motion=motion)


def render_video(
    segments: Sequence[Segment],
    output: Path,
    *,
    size: tuple[int, int] = LANDSCAPE,
    work_dir: Path | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    encoder: str = "gop",
    motion: str = "none",
    rtl: bool = False,
    music: Path | None = None,
    pieces: Pieces | None = None,
    piece_seconds: float = PIECE_SECONDS,
) -> RenderResult:
    """Render ``segments`` to ``output`` (an .mp4); return what was made.

    The shots come from ``rhythm.plan_shots``: ``motion`` is MOTION (``none`` or ``push``:
    a push-in at each framing), ``rtl`` the chapter's reading order (where a close view of
    a panel starts), ``music`` a track for the bed under the voice (``narration_audio``:
    looped, faded, ducked under the speech). With ``pieces`` the picture track is made in
    pieces of about ``piece_seconds`` (each from a framing's start) kept there as they are
    finished, and a piece already there is reused: a render started again after an
    interruption encodes only what is missing. ``encoder``: ``gop`` (default) encodes each still picture's short GOP
    once and repeats it; ``frames`` encodes every frame (the plain way, kept for comparison).
    """
    if not segments:
        raise ValueError("nothing to render: no segments")
    work = work_dir or output.parent
    work.mkdir(parents=True, exist_ok=True)
    durations = [_wav_seconds(s.audio) for s in segments]
    if encoder not in ("gop", "frames"):
        raise ValueError(f"unknown encoder {encoder!r} (gop or frames)")
    # the narration (concat, loudness, AAC) is made by ffmpeg on the other core while this
    # process encodes the pictures; the two tracks are then joined by stream copy
    shots = plan(segments, durations, size, rtl=rtl, motion=motion)
    counts = frame_counts([shot.seconds for shot in shots])
    narration = work / f".{output.stem}.narration.m4a"
    audio_job = NarrationJob([s.audio for s in segments], narration, work, music=music).start()
    picture_track = work / f".{output.stem}.video.mp4"
    options = {"size": size, "encoder": encoder, "crf": crf, "preset": preset}
    try:
        if pieces is None:
            frames = _encode_track(picture_track, shots, counts, **options)
        else:
            frames = _encode_pieces(picture_track, shots, counts, pieces, work / ".pieces",
                                    piece_seconds=piece_seconds, **options)
        audio_job.result()
        temp = output.with_name(f".{output.name}.part")
        _join(picture_track, narration, temp)
        temp.replace(output)
    finally:
        audio_job.cancel()
        picture_track.unlink(missing_ok=True)
        if pieces is not None:  # the store keeps its own copies
            shutil.rmtree(work / ".pieces", ignore_errors=True)
        narration.unlink(missing_ok=True)
    return RenderResult(path=output, duration_seconds=frames / FPS, frames=frames, size=size)


def _encode_track(path: Path, shots: Sequence[Shot], counts: Sequence[int], *, size: tuple[int, int],
                  encoder: str, crf: int, preset: str) -> int:
    """The picture track of ``shots`` into ``path`` (an MP4 of H.264 alone); its frame count."""
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, FPS)
        if encoder == "gop":
            video.options = {
                "crf": str(crf),
                "preset": preset,
                "profile": "high",
                "tune": "zerolatency",
                "bframes": "0",
                "keyint": "250",
                "scenecut": "0",
                "forced-idr": "1",
                # the P-frames show the same picture again, so there is no motion to
                # search: the cheapest motion search (diamond, full-pel) finds the zero
                # vector as well as any; intra partitions stay as the preset has them
                "x264-params": "me=dia:subme=0:partitions=i4x4,i8x8",
            }
            return _encode_repeated_gops(container, video, shots, counts, size)
        video.options = {
            "crf": str(crf),
            "preset": preset,
            "profile": "high",
            "g": str(FPS * KEYFRAME_SECONDS),
            "keyint_min": str(FPS),
        }
        return _encode_every_frame(container, video, shots, counts, size)


class Pieces(Protocol):
    """Where finished pieces of a picture track are kept between attempts (a Spot worker's
    bucket): ``get`` a piece made before (its local file) or None, ``put`` a new one."""

    def get(self, name: str) -> Path | None: ...

    def put(self, name: str, path: Path) -> None: ...


def piece_groups(shots: Sequence[Shot], counts: Sequence[int], piece_frames: int) -> list[tuple[int, int]]:
    """The shots cut into pieces of at least ``piece_frames`` frames (the last may be
    shorter), each ``(first, past_last)`` and each starting at a framing's first shot, so a
    piece opens with a keyframe and needs nothing of the one before (pure)."""
    groups, first, frames = [], 0, 0
    for n, count in enumerate(counts):
        if frames >= piece_frames and shots[n].framing != shots[n - 1].framing:
            groups.append((first, n))
            first, frames = n, 0
        frames += count
    if len(counts) > first:
        if groups and frames == 0:  # trailing shots too short for a frame: no empty piece
            groups[-1] = (groups[-1][0], len(counts))
        else:
            groups.append((first, len(counts)))
    return groups


def plan_digest(shots: Sequence[Shot], counts: Sequence[int], **options: Any) -> str:
    """A digest of what a picture track is made from (the shots, their panels' names and
    sizes, the frame counts, the encoder's settings): a piece made from another plan is
    never reused."""
    described = [
        [shot.panel.name, shot.panel.stat().st_size, shot.subtitle, count, shot.framing,
         [shot.view.x0, shot.view.y0, shot.view.x1, shot.view.y1],
         None if shot.push_from is None else [shot.push_from.x0, shot.push_from.y0, shot.push_from.x1,
                                              shot.push_from.y1]]
        for shot, count in zip(shots, counts, strict=True)
    ]
    text = json.dumps({"shots": described, **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_pieces(path: Path, shots: Sequence[Shot], counts: Sequence[int], pieces: Pieces, folder: Path, *,
                   piece_seconds: float, **options: Any) -> int:
    """The picture track made piece by piece: a piece kept from an earlier attempt is
    reused, a missing one encoded and handed to ``pieces`` at once; then all joined by
    stream copy (ffmpeg's concat demuxer) into ``path``."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = plan_digest(shots, counts, **options)
    files: list[Path] = []
    for n, (first, last) in enumerate(piece_groups(shots, counts, round(piece_seconds * FPS))):
        name = f"{digest}-{n:04d}.mp4"
        found = pieces.get(name)
        if found is None:
            found = folder / name
            _encode_track(found, shots[first:last], counts[first:last], **options)
            pieces.put(name, found)
        files.append(found)
    listing = folder / f"{digest}.txt"
    listing.write_text("".join(f"file '{file.resolve()}'\n" for file in files), encoding="utf-8")
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
         "-i", str(listing), "-c", "copy", "-f", "mp4", str(path)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not join the pieces: {done.stderr.strip()[-300:]}")
    return sum(counts)


def _encode_repeated_gops(container: Any, video: Any, shots: Sequence[Shot], counts: Sequence[int],
                          size: tuple[int, int]) -> int:
    """Each still picture: one GOP of up to GOP_FRAMES frames (IDR, then P-frames) encoded
    once, muxed again with new timestamps as often as the picture's length allows, and the
    rest of its frames filled by the GOP's first packets (a GOP's prefix is itself a closed
    GOP). So each still costs one IDR frame and at most GOP_FRAMES encoded frames. A moving
    frame is encoded once, as a P-frame after the one before (an IDR at a cut)."""
    index = 0
    for picture, frame in pictures(shots, counts, size):
        if picture.moving:
            for packet in _encode_gop(video, frame, index, 1, key=picture.cut):
                container.mux(packet)
            index += 1
            continue
        gop = [bytes(packet) for packet in _encode_gop(video, frame, index, min(GOP_FRAMES, picture.count))]
        repeats, rest = divmod(picture.count, len(gop))
        for offset, data in enumerate(gop * repeats + gop[:rest]):
            packet = av.Packet(data)
            packet.stream = video
            packet.time_base = Fraction(1, FPS)
            packet.pts = packet.dts = index + offset
            packet.is_keyframe = offset % len(gop) == 0
            container.mux(packet)
        index += picture.count
    container.mux(video.encode(None))
    return index


def _encode_gop(video: Any, frame: av.VideoFrame, first: int, length: int, key: bool = True) -> list[av.Packet]:
    """``length`` frames of one picture from frame number ``first``, the first an IDR frame
    (``key``) or left to the encoder (a P-frame)."""
    packets: list[av.Packet] = []
    for offset in range(length):
        frame.pts = first + offset
        frame.time_base = Fraction(1, FPS)
        frame.pict_type = av.video.frame.PictureType.I if key and offset == 0 else av.video.frame.PictureType.NONE
        packets.extend(video.encode(frame))
    if len(packets) != length:  # zerolatency gives one packet per frame at once
        raise RuntimeError(f"the encoder held back frames ({len(packets)} packets for {length} frames)")
    return packets


def _encode_every_frame(container: Any, video: Any, shots: Sequence[Shot], counts: Sequence[int],
                        size: tuple[int, int]) -> int:
    index = 0
    for picture, frame in pictures(shots, counts, size):
        for _ in range(picture.count):
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
            index += 1
    container.mux(video.encode(None))
    return index


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _join(video: Path, audio: Path, output: Path) -> None:
    """Put the picture track and the narration in one MP4 (stream copy), moov first."""
    done = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(video),
            "-i",
            str(audio),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not join picture and sound: {done.stderr.strip()[-300:]}")
