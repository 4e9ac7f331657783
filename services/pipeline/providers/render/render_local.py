"""The local renderer: panels + narration → an MP4 YouTube takes as it is.

What it makes: H.264 (yuv420p, High profile) at 30 fps, AAC-LC 48 kHz mono, the moov atom
first (``faststart``), 1920×1080 (or 1080×1920 for Shorts). The shots come from
``rhythm.plan_shots``: a cut at each panel, more framings for a panel shown long (its
close views), a new subtitle line at each cue or page, and with MOTION=push a short
push-in at each framing. Each panel is scaled to fill the frame as far as its shape
allows, over a blurred, darkened copy of itself, with the subtitle at the bottom of the
safe area, below the panel when its shape leaves room (``framing.py``). Each distinct
picture is composited once (the shots of a framing share their backdrop and panel, only
the line changes) and converted to YUV once, on a helper thread a few pictures ahead of
the encoder, so the two overlap on two cores.

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

import functools
import hashlib
import json
import shutil
import subprocess
import wave
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from services.pipeline.providers.fonts import font_path, wrap_text
from services.pipeline.providers.render.framing import Layout, layout, safe_box
from services.pipeline.providers.render.narration_audio import NarrationJob
from services.pipeline.providers.render.rhythm import PUSH_SECONDS, Beat, Shot, View, plan_shots

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
FPS = 30
KEYFRAME_SECONDS = 2
PIECE_SECONDS = 30.0  # a piece of a resumable render (see render_video's ``pieces``)
GOP_FRAMES = 5  # a repeated GOP: a keyframe every 5 frames (1/6 s) in the default encoder
BACKDROP_BRIGHTNESS = 0.45  # the blurred copy round a panel, darkened so the panel stands out


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
    for picture, frame in _pictures(shots, counts, size):
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
    for picture, frame in _pictures(shots, counts, size):
        for _ in range(picture.count):
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
            index += 1
    container.mux(video.encode(None))
    return index


@dataclass(frozen=True)
class _Picture:
    """One picture of the encoding: a shot's view for ``count`` frames; a moving frame
    (a push-in's) is shown once and encoded as it is, a still one is repeated."""

    shot: Shot
    view: View
    count: int
    moving: bool = False
    cut: bool = False  # the first picture of its framing: a keyframe


def _ease(t: float) -> float:
    """Smoothstep: a push starts and settles gently."""
    return t * t * (3 - 2 * t)


def _between(a: View, b: View, t: float) -> View:
    start, end = (a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1)
    return View(*(x + (y - x) * t for x, y in zip(start, end, strict=True)))


def _timeline(shots: Sequence[Shot], counts: Sequence[int]) -> Iterator[_Picture]:
    """The pictures of the shots in order: a push-in's moving frames (over PUSH_SECONDS,
    or the whole shot when it is shorter), then the view held for the rest."""
    framing = None
    for shot, count in zip(shots, counts, strict=True):
        if count <= 0:
            continue
        cut, framing = shot.framing != framing, shot.framing
        moving = min(count - 1, round(PUSH_SECONDS * FPS)) if shot.push_from is not None else 0
        for i in range(moving):
            yield _Picture(shot, _between(shot.push_from, shot.view, _ease(i / moving)), 1, True, cut and i == 0)
        yield _Picture(shot, shot.view, count - moving, False, cut and not moving)


def _pictures(
    shots: Sequence[Shot], counts: Sequence[int], size: tuple[int, int], ahead: int = 3
) -> Iterator[tuple[_Picture, av.VideoFrame]]:
    """Each picture of the timeline with its YUV frame.

    The frames are composited and converted on a helper thread, at most ``ahead`` in
    advance, while the caller encodes: Pillow and libx264 both release the GIL, so on two
    cores the compositing hides behind the encoding, and memory stays at a few frames.
    """
    framer = _Framer(shots, size)
    timeline = _timeline(shots, counts)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="composite") as helper:
        pending: deque[tuple[_Picture, Future[av.VideoFrame]]] = deque()

        def submit() -> None:
            picture = next(timeline, None)
            if picture is not None:
                pending.append((picture, helper.submit(framer.yuv, picture)))

        for _ in range(ahead):
            submit()
        while pending:
            picture, frame = pending.popleft()
            submit()
            yield picture, frame.result()


class _Framer:
    """Composites the pictures of a plan, reusing what the shots of a framing share.

    The shots of one framing show one view of one panel with the same layout (the caption
    height is the tallest of their lines, so the panel does not jump when a line changes):
    the backdrop and the framed panel are made once per framing (Pillow, bicubic), and each
    line only draws its caption. A framing that pushes in is drawn by OpenCV instead: the
    panel is scaled once to the push's closest view, and each frame maps the view of the
    moment onto the panel's box (``warpAffine``, bilinear, a few milliseconds) over the
    framing's backdrop and caption. Every picture goes to YUV 4:2:0 (BT.601, video range,
    as libswscale makes it) by ``cvtColor``.
    """

    def __init__(self, shots: Sequence[Shot], size: tuple[int, int]) -> None:
        self.size = size
        self.heights: dict[int, int] = {}
        for shot in shots:
            height = caption_of(shot.subtitle, size)[3]
            self.heights[shot.framing] = max(height, self.heights.get(shot.framing, 0))
        self.pushing = {shot.framing for shot in shots if shot.push_from is not None}
        self._panel: tuple[Path, Image.Image] | None = None
        self._backdrop: tuple[Path, Image.Image] | None = None
        self._layer: tuple[tuple[Any, ...], Image.Image] | None = None
        self._scaled: tuple[int, np.ndarray, tuple[float, float]] | None = None
        self._base: tuple[tuple[int, str], np.ndarray, tuple[np.ndarray, np.ndarray] | None] | None = None

    def yuv(self, picture: _Picture) -> av.VideoFrame:
        if picture.shot.framing in self.pushing:
            rgb = self.moving(picture.shot, picture.view)
        else:
            rgb = np.asarray(self.composite(picture.shot, picture.view))
        return av.VideoFrame.from_ndarray(_cv2().cvtColor(rgb, _cv2().COLOR_RGB2YUV_I420), format="yuv420p")

    def plan(self, shot: Shot, view: View) -> Layout:
        return layout(view.pixels(self.panel(shot.panel).size), self.size, self.heights.get(shot.framing, 0))

    def composite(self, shot: Shot, view: View) -> Image.Image:
        """A still picture: the framing's layer (backdrop and panel) and the shot's line."""
        plan = self.plan(shot, view)
        key = (shot.panel, view, plan)
        if self._layer is None or self._layer[0] != key:
            panel = self.panel(shot.panel)
            layer = self.backdrop(shot.panel).copy()
            fitted = panel.resize(
                (plan.panel.width, plan.panel.height), Image.Resampling.BICUBIC, box=view.box(panel.size),
                reducing_gap=2.0,
            )
            layer.paste(fitted, (plan.panel.x0, plan.panel.y0))
            self._layer = (key, layer)
        canvas = self._layer[1].copy()
        _caption(canvas, shot.subtitle, plan)
        return canvas

    def moving(self, shot: Shot, view: View) -> np.ndarray:
        """A frame of a pushing framing, ``view`` of the panel on the framing's box (RGB)."""
        cv2 = _cv2()
        plan = self.plan(shot, shot.view)  # the push keeps the view's shape: one box throughout
        box = plan.panel
        if self._scaled is None or self._scaled[0] != shot.framing:
            panel = self.panel(shot.panel)
            scale = box.width / shot.view.pixels(panel.size)[0]  # the closest view at 1:1
            size = (max(1, round(panel.width * scale)), max(1, round(panel.height * scale)))
            source = np.asarray(panel)
            way = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            self._scaled = (shot.framing, cv2.resize(source, size, interpolation=way), size)
        _, scaled, (sw, sh) = self._scaled
        if self._base is None or self._base[0] != (shot.framing, shot.subtitle):
            base = self.backdrop(shot.panel).copy()
            overlay = None
            if plan.over_panel:  # the caption goes over the moving panel: kept apart to blend
                layer = Image.new("RGBA", self.size, (0, 0, 0, 0))
                _caption(layer, shot.subtitle, plan)
                rgba = np.asarray(layer.crop((box.x0, box.y0, box.x1, box.y1))).astype(np.float32)
                overlay = (rgba[..., :3], rgba[..., 3:] / 255.0)
            else:
                _caption(base, shot.subtitle, plan)
            self._base = ((shot.framing, shot.subtitle), np.array(base), overlay)
        _, base, overlay = self._base
        ax = (view.x1 - view.x0) * sw / box.width
        ay = (view.y1 - view.y0) * sh / box.height
        matrix = np.array(
            [[ax, 0.0, view.x0 * sw + 0.5 * ax - 0.5], [0.0, ay, view.y0 * sh + 0.5 * ay - 0.5]], dtype=np.float64
        )
        warped = cv2.warpAffine(
            scaled, matrix, (box.width, box.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if overlay is not None:
            rgb, alpha = overlay
            warped = (warped * (1.0 - alpha) + rgb * alpha).astype(np.uint8)
        frame = base.copy()
        frame[box.y0 : box.y1, box.x0 : box.x1] = warped
        return frame

    def panel(self, path: Path) -> Image.Image:
        if self._panel is None or self._panel[0] != path:
            with Image.open(path) as image:
                self._panel = (path, image.convert("RGB"))
        return self._panel[1]

    def backdrop(self, path: Path) -> Image.Image:
        if self._backdrop is None or self._backdrop[0] != path:
            self._backdrop = (path, _backdrop(self.panel(path), self.size))
        return self._backdrop[1]


def _cv2() -> Any:
    import cv2  # loaded when a video is rendered, not when the daemon starts

    return cv2


def _composite(shot: Shot, size: tuple[int, int]) -> Image.Image:
    """The still picture of one shot, framed as the render frames it when the shot is the
    only one of its framing (the benchmark's reference)."""
    return _Framer([shot], size).composite(shot, shot.view)


def _caption(canvas: Image.Image, subtitle: str, plan: Layout) -> None:
    """The subtitle burned in at the bottom of the safe area, over a translucent band
    when it lies over the panel so the text reads over the drawing."""
    if plan.caption is None or not subtitle.strip():
        return
    box = plan.caption
    font, lines, line_height, _ = caption_of(subtitle, canvas.size)
    if plan.over_panel:
        band = Image.new("L", (box.width, box.height), 150)
        canvas.paste(Image.new("RGB", band.size, (0, 0, 0)), (box.x0, box.y0), band)
    draw = ImageDraw.Draw(canvas)
    top = box.y1 - (line_height * len(lines) + line_height // 2)  # the lines sit at the bottom
    for n, line in enumerate(lines):
        x = box.x0 + (box.width - draw.textlength(line, font=font)) / 2
        draw.text(
            (x, top + line_height // 4 + n * line_height),
            line,
            font=font,
            fill=(255, 255, 255),
            stroke_width=max(2, font.size // 14),
            stroke_fill=(0, 0, 0),
        )


def caption_of(subtitle: str, size: tuple[int, int]) -> tuple[ImageFont.FreeTypeFont, list[str], int, int]:
    """The subtitle's font, its lines wrapped to the safe area, the line height and the
    height of the whole block (0 without a subtitle) on a frame of ``size``."""
    width, height = size
    font = _subtitle_font(max(28, min(height // 24, width // 18)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap_text(measure, subtitle, font, int(safe_box(size).width * 0.94))
    line_height = int(font.size * 1.3)
    return font, lines, line_height, (line_height * len(lines) + line_height // 2 if lines else 0)


def _backdrop(panel: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The panel scaled to cover the frame, blurred and darkened: what the panel leaves.

    Made small (a sixteenth of the frame), blurred there and scaled back up: cheap at any
    frame size, and the blur hides the upscaling."""
    small = ImageOps.fit(panel, (max(1, size[0] // 16), max(1, size[1] // 16)), Image.Resampling.BILINEAR)
    small = ImageEnhance.Brightness(small.filter(ImageFilter.GaussianBlur(2))).enhance(BACKDROP_BRIGHTNESS)
    return small.resize(size, Image.Resampling.BILINEAR)


@functools.lru_cache(maxsize=4)
def _subtitle_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path("SemiBold")), size)


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
