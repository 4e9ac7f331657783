"""The local renderer: panels + narration → an MP4 YouTube takes as it is.

What it makes: H.264 (yuv420p, High profile) at 30 fps, AAC-LC 48 kHz mono, the moov atom
first (``faststart``), 1920×1080 (or 1080×1920 for Shorts). Each panel is framed once:
scaled to fill the frame as far as its shape allows, over a blurred, darkened copy of
itself, with the segment's narration burned in as a subtitle at the bottom of the safe
area, below the panel when its shape leaves room (``framing.py``). So each
distinct picture is composited once (Pillow) and converted to YUV once, on a helper
thread a picture or two ahead of the encoder, so the two overlap on two cores.

Encoding a still picture for seconds repeats the same work frame after frame, so the
default encoder does it once: it encodes a GOP of 10 frames of the picture (an IDR frame
and 9 P-frames, no B-frames, so the GOP decodes on its own) and muxes those packets again
with new timestamps as many times as the picture's length allows, then the GOP's first
packets for the remaining frames (a prefix of a closed GOP is a closed GOP), which lands
each cut on its exact frame. A keyframe comes
every 10 frames (1/3 s). ``encoder="frames"`` encodes every frame instead (keyframe every
2 s), the plain way, kept for comparison.

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
import subprocess
import wave
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from services.pipeline.providers.fonts import font_path, wrap_text
from services.pipeline.providers.render.framing import layout, safe_box
from services.pipeline.providers.render.narration_audio import NarrationJob

__all__ = [
    "LANDSCAPE",
    "PORTRAIT",
    "RenderResult",
    "Segment",
    "Shot",
    "frame_counts",
    "render_video",
    "shots_of",
]

LANDSCAPE = (1920, 1080)
PORTRAIT = (1080, 1920)
FPS = 30
KEYFRAME_SECONDS = 2
GOP_FRAMES = 10  # a repeated GOP: a keyframe every 10 frames (1/3 s) in the default encoder
BACKDROP_BRIGHTNESS = 0.45  # the blurred copy round a panel, darkened so the panel stands out


@dataclass(frozen=True)
class Segment:
    """One narration segment: its panel(s), its subtitle and the WAV of its narration.

    ``cues`` are ``(start, end, text)`` in seconds from the segment's start (word-timed
    lines from the TTS): each line shows from its start until the next one's, the first from
    the segment's start. Without cues the whole ``subtitle`` shows for the whole segment.
    ``more_panels`` follow ``panel`` when the narration covers a group of panels: the
    segment's time is shared equally between them.
    """

    panel: Path
    subtitle: str
    audio: Path
    cues: tuple[tuple[float, float, str], ...] = ()
    more_panels: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Shot:
    """What the screen shows for a stretch of time: one panel and one subtitle line."""

    panel: Path
    subtitle: str
    seconds: float


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


def shots_of(segment: Segment, seconds: float) -> list[Shot]:
    """The shots of a segment lasting ``seconds``: a new one at every panel change and cue.

    Pure: the cut points are the panel changes (equal shares of the segment) and the cue
    starts inside the segment; each stretch shows the panel and the cue line current at
    its start. Stretches showing the same thing are merged.
    """
    panels = (segment.panel, *segment.more_panels)
    cues = sorted((max(0.0, start), text) for start, _end, text in segment.cues if text.strip())
    cuts = {seconds * n / len(panels) for n in range(1, len(panels))}
    cuts.update(start for start, _ in cues if 0 < start < seconds)
    edges = [0.0, *sorted(cuts), seconds]
    shots: list[Shot] = []
    for begin, end in zip(edges, edges[1:], strict=False):
        panel = panels[min(len(panels) - 1, int(begin * len(panels) / seconds))] if seconds else panels[0]
        current = [text for start, text in cues if start <= begin] or [text for _, text in cues[:1]]
        subtitle = current[-1] if current else segment.subtitle
        if shots and (shots[-1].panel, shots[-1].subtitle) == (panel, subtitle):
            shots[-1] = Shot(panel, subtitle, shots[-1].seconds + end - begin)
        else:
            shots.append(Shot(panel, subtitle, end - begin))
    return shots


def render_video(
    segments: Sequence[Segment],
    output: Path,
    *,
    size: tuple[int, int] = LANDSCAPE,
    work_dir: Path | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    encoder: str = "gop",
) -> RenderResult:
    """Render ``segments`` to ``output`` (an .mp4); return what was made.

    ``encoder``: ``gop`` (default) encodes each picture's short GOP once and repeats it;
    ``frames`` encodes every frame (the plain way, kept for comparison).
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
    shots = [
        shot
        for segment, seconds in zip(segments, durations, strict=True)
        for shot in shots_of(segment, seconds)
    ]
    counts = frame_counts([shot.seconds for shot in shots])
    narration = work / f".{output.stem}.narration.m4a"
    audio_job = NarrationJob([s.audio for s in segments], narration, work).start()
    picture_track = work / f".{output.stem}.video.mp4"
    try:
        with av.open(str(picture_track), mode="w", format="mp4") as container:
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
                frames = _encode_repeated_gops(container, video, shots, counts, size)
            else:
                video.options = {
                    "crf": str(crf),
                    "preset": preset,
                    "profile": "high",
                    "g": str(FPS * KEYFRAME_SECONDS),
                    "keyint_min": str(FPS),
                }
                frames = _encode_every_frame(container, video, shots, counts, size)
        audio_job.result()
        temp = output.with_name(f".{output.name}.part")
        _join(picture_track, narration, temp)
        temp.replace(output)
    finally:
        audio_job.cancel()
        picture_track.unlink(missing_ok=True)
        narration.unlink(missing_ok=True)
    return RenderResult(path=output, duration_seconds=frames / FPS, frames=frames, size=size)


def _encode_repeated_gops(
    container: Any, video: Any, shots: Sequence[Shot], counts: Sequence[int], size: tuple[int, int]
) -> int:
    """Each picture: one GOP of up to GOP_FRAMES frames (IDR, then P-frames) encoded once,
    muxed again with new timestamps as often as the picture's length allows, and the rest
    of its frames filled by the GOP's first packets (a GOP's prefix is itself a closed GOP).
    So each picture costs one IDR frame and at most GOP_FRAMES encoded frames."""
    index = 0
    for picture, count in _pictures(shots, counts, size):
        gop = [bytes(packet) for packet in _encode_gop(video, picture, index, min(GOP_FRAMES, count))]
        repeats, rest = divmod(count, len(gop))
        for offset, data in enumerate(gop * repeats + gop[:rest]):
            packet = av.Packet(data)
            packet.stream = video
            packet.time_base = Fraction(1, FPS)
            packet.pts = packet.dts = index + offset
            packet.is_keyframe = offset % len(gop) == 0
            container.mux(packet)
        index += count
    container.mux(video.encode(None))
    return index


def _encode_gop(video: Any, picture: av.VideoFrame, first: int, length: int) -> list[av.Packet]:
    packets: list[av.Packet] = []
    for offset in range(length):
        picture.pts = first + offset
        picture.time_base = Fraction(1, FPS)
        picture.pict_type = av.video.frame.PictureType.I if offset == 0 else av.video.frame.PictureType.NONE
        packets.extend(video.encode(picture))
    if len(packets) != length:  # zerolatency gives one packet per frame at once
        raise RuntimeError(f"the encoder held back frames ({len(packets)} packets for {length} frames)")
    return packets


def _encode_every_frame(
    container: Any, video: Any, shots: Sequence[Shot], counts: Sequence[int], size: tuple[int, int]
) -> int:
    index = 0
    for picture, count in _pictures(shots, counts, size):
        for _ in range(count):
            picture.pts = index
            picture.time_base = Fraction(1, FPS)
            container.mux(video.encode(picture))
            index += 1
    container.mux(video.encode(None))
    return index


def _pictures(
    shots: Sequence[Shot], counts: Sequence[int], size: tuple[int, int], ahead: int = 2
) -> Iterator[tuple[av.VideoFrame, int]]:
    """(YUV picture, frame count) for each shot shown for at least one frame.

    The pictures are composited and converted on a helper thread, at most ``ahead`` in
    advance, while the caller encodes: Pillow and libx264 both release the GIL, so on two
    cores the compositing hides behind the encoding, and memory stays at a few frames.
    """
    shown = [(shot, count) for shot, count in zip(shots, counts, strict=True) if count > 0]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="composite") as helper:
        pending: deque[Future[av.VideoFrame]] = deque()
        for segment, _ in shown[:ahead]:
            pending.append(helper.submit(_yuv_picture, segment, size))
        for n, (_, count) in enumerate(shown):
            picture = pending.popleft().result()
            if n + ahead < len(shown):
                pending.append(helper.submit(_yuv_picture, shown[n + ahead][0], size))
            yield picture, count


def _yuv_picture(shot: Shot, size: tuple[int, int]) -> av.VideoFrame:
    return av.VideoFrame.from_image(_composite(shot, size)).reformat(format="yuv420p")


def _composite(shot: Shot, size: tuple[int, int]) -> Image.Image:
    """The panel framed to fill the frame over a blurred, darkened copy of itself, its
    subtitle burned in at the bottom of the safe area (``framing.py`` says where)."""
    font, lines, line_height, caption_height = caption_of(shot.subtitle, size)
    with Image.open(shot.panel) as panel:
        panel = panel.convert("RGB")
        plan = layout(panel.size, size, caption_height)
        canvas = _backdrop(panel, size)
        fitted = panel.resize((plan.panel.width, plan.panel.height), Image.Resampling.BICUBIC, reducing_gap=2.0)
    canvas.paste(fitted, (plan.panel.x0, plan.panel.y0))
    if plan.caption is None:
        return canvas
    box = plan.caption
    if plan.over_panel:  # a translucent band, so the text reads over the drawing
        band = Image.new("L", size, 0)
        ImageDraw.Draw(band).rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), fill=150)
        canvas.paste(Image.new("RGB", size, (0, 0, 0)), (0, 0), band)
    draw = ImageDraw.Draw(canvas)
    for n, line in enumerate(lines):
        x = box.x0 + (box.width - draw.textlength(line, font=font)) / 2
        draw.text(
            (x, box.y0 + line_height // 4 + n * line_height),
            line,
            font=font,
            fill=(255, 255, 255),
            stroke_width=max(2, font.size // 14),
            stroke_fill=(0, 0, 0),
        )
    return canvas


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
