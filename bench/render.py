"""Render benchmark: the same 60-panel chapter with narration (~3.5 min), four ways.

The chapter is the sample's: 15 drawn pages, each cut into its four panels by the panel
detector in manga order (as FetchManga does), so every picture is a panel framed over
its blurred copy, planned into shots by ``rhythm.plan_shots`` (a cut at each panel, the
subtitle paged at the reading pace: about 17 cuts a minute, two pictures a panel).

  ours     -- services.pipeline.providers.render.render_local, MOTION=none (each picture
              composited once on a helper thread, its 5-frame GOP encoded once and
              repeated; narration brought to -14 LUFS and encoded on the other core)
  ours-push -- the same with MOTION=push: a 0.8 s push-in at each cut, every moving
              frame composited (OpenCV) and encoded
  ffmpeg   -- plain one-pass ffmpeg: the composited stills of the same plan through the
              concat demuxer, libx264 veryfast, every frame encoded (same audio)
  moviepy  -- as most video generators use it: per panel an ImageClip over a 1920x1080
              background with a TextClip subtitle, concatenated, libx264 veryfast

The narration is the tone placeholder voice (deterministic, the same for all three). When
espeak-ng is installed, ours is also timed with espeak-ng's speech for the same text
(``ours-espeak``, for information: real speech costs the AAC encoder more than a tone).

Each runs in its own child process; the parent samples the RSS of the child's whole process
tree (ffmpeg subprocesses included) every 50 ms. Printed per way: wall time, realtime factor
(video seconds per wall second), peak RSS. Quality: frames sampled at six shot midpoints
of our video are compared with the composited picture by ffmpeg's ssim filter.

Targets (1080p30, burned subtitles): ours >= 30x realtime, ours-push >= 8x, ours >= 50x
moviepy, peak RSS <= 300 MB, SSIM >= 0.97. Needs the bench extra (moviepy, psutil):
  .venv/bin/pip install -e '.[bench]'; .venv/bin/python bench/render.py   (~10 min: moviepy)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import imageio_ffmpeg
import psutil
from _stats import verdict
from PIL import Image

from services.pipeline.panels import ReadingDirection, panels_of
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.fonts import font_path
from services.pipeline.providers.render.compositor import Framer
from services.pipeline.providers.render.render_local import (
    FPS,
    LANDSCAPE,
    Segment,
    _wav_seconds,
    frame_counts,
    plan,
    render_video,
)
from services.pipeline.providers.tts import tts_local

PANELS = 60
TARGET_REALTIME = 30.0  # issue 14: still framing >= 30x (the target before it: 15x)
TARGET_PUSH_REALTIME = 8.0  # issue 14: MOTION=push >= 8x
TARGET_VS_MOVIEPY = 50.0
TARGET_RSS_MB = 300.0
TARGET_SSIM = 0.97
SENTENCES = (  # with "Khung N." about 3 s of narration each: 60 segments ~ 3 minutes
    "Minh gặp ông rồng hiền lành.",
    "Lan ngạc nhiên nhìn lên núi.",
    "Cả ba bay quanh ngọn núi.",
)


def prepare(work: Path) -> list[Segment]:
    """The chapter, its narration (tone voice: fast, deterministic) and the segments; the
    espeak-ng narration of the same text too, when espeak-ng is installed."""
    chapter = sample_chapter.make_chapter(work / "samples", panels=PANELS)
    segments = []
    for index, panel in enumerate(_cut(chapter, work / "panels")):
        text = f"Khung {index + 1}. {SENTENCES[index % 3]}"
        speech = tts_local.synthesize(text, work / "audio" / f"seg-{index:03d}.wav", engine="tone")
        if shutil.which("espeak-ng"):
            tts_local.synthesize(text, work / "audio-espeak" / f"seg-{index:03d}.wav", engine="espeak-ng")
        segments.append(Segment(panel, text, speech.path))
    return segments


def _cut(chapter: Path, out: Path) -> list[Path]:
    """The chapter's pages cut into their panels, in manga order, as FetchManga does."""
    out.mkdir(parents=True, exist_ok=True)
    panels: list[Path] = []
    for page in sorted(chapter.glob("page-*.png")):
        with Image.open(page) as image:
            for box in panels_of(page, ReadingDirection.RTL):
                path = out / f"panel-{len(panels) + 1:03d}.png"
                image.crop((box.x0, box.y0, box.x1, box.y1)).save(path)
                panels.append(path)
    return panels


def run_ours(segments: list[Segment], out: Path) -> None:
    render_video(segments, out, size=LANDSCAPE, work_dir=out.parent, rtl=True)


def run_ours_push(segments: list[Segment], out: Path) -> None:
    render_video(segments, out, size=LANDSCAPE, work_dir=out.parent, rtl=True, motion="push")


def shots_of(segments: list[Segment]) -> list:
    """The still plan ours renders (MOTION=none)."""
    return plan(segments, [_wav_seconds(s.audio) for s in segments], LANDSCAPE, rtl=True)


def run_ffmpeg(segments: list[Segment], out: Path) -> None:
    """Composite the stills of the same plan (as ours does), then one ffmpeg pass encoding
    every frame."""
    work = out.parent / "ffmpeg-stills"
    work.mkdir(exist_ok=True)
    shots = shots_of(segments)
    framer = Framer(shots, LANDSCAPE)
    counts = frame_counts([shot.seconds for shot in shots])
    lines = []
    for index, (shot, count) in enumerate(zip(shots, counts, strict=True)):
        still = work / f"still-{index:03d}.png"
        framer.composite(shot, shot.view).save(still)
        lines += [f"file '{still}'", f"duration {count / FPS:.6f}"]
    lines.append(f"file '{work / f'still-{len(shots) - 1:03d}.png'}'")
    (work / "list.txt").write_text("\n".join(lines) + "\n")
    audio_list = work / "audio.txt"
    audio_list.write_text("".join(f"file '{s.audio}'\n" for s in segments))
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(work / "list.txt"),
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(audio_list),
            "-r",
            str(FPS),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "48000",
            "-ac",
            "2",
            "-shortest",
            "-movflags",
            "+faststart",
            str(out),
        ],
        check=True,
    )


def run_moviepy(segments: list[Segment], out: Path) -> None:
    from moviepy import ColorClip, CompositeVideoClip, ImageClip, TextClip, concatenate_videoclips
    from moviepy.audio.io.AudioFileClip import AudioFileClip

    width, height = LANDSCAPE
    clips = []
    for segment in segments:
        audio = AudioFileClip(str(segment.audio))
        seconds = audio.duration
        background = ColorClip(LANDSCAPE, color=(16, 16, 20), duration=seconds)
        panel = ImageClip(str(segment.panel), duration=seconds).resized(height=int(height * 0.82))
        panel = panel.with_position(("center", int(height * 0.02)))
        caption = TextClip(
            text=segment.subtitle,
            font=str(font_path("SemiBold")),
            font_size=45,
            color="white",
            stroke_color="black",
            stroke_width=3,
            size=(int(width * 0.9), None),
            method="caption",
            duration=seconds,
        ).with_position(("center", int(height * 0.86)))
        clips.append(CompositeVideoClip([background, panel, caption], size=LANDSCAPE).with_audio(audio))
    video = concatenate_videoclips(clips)
    video.write_videofile(
        str(out), fps=FPS, codec="libx264", preset="veryfast", audio_codec="aac", audio_fps=48000, logger=None
    )


WAYS = {
    "ours": run_ours,
    "ours-push": run_ours_push,
    "ffmpeg": run_ffmpeg,
    "moviepy": run_moviepy,
    "ours-espeak": run_ours,
}


def child(way: str, work: Path) -> None:
    segments = prepare_cached(work, "audio-espeak" if way == "ours-espeak" else "audio")
    out = work / f"{way}.mp4"
    started = time.perf_counter()
    WAYS[way](segments, out)
    print(json.dumps({"way": way, "seconds": time.perf_counter() - started, "video": str(out)}))


def prepare_cached(work: Path, audio: str = "audio") -> list[Segment]:
    panels = sorted((work / "panels").glob("panel-*.png"))
    return [
        Segment(panel, f"Khung {i + 1}. {SENTENCES[i % 3]}", work / audio / f"seg-{i:03d}.wav")
        for i, panel in enumerate(panels)
    ]


def measure(way: str, work: Path) -> dict:
    """Run one way in a child; sample its process tree's RSS."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", way, str(work)], stdout=subprocess.PIPE, text=True
    )
    parent = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise SystemExit(f"{way} failed (exit {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    with av.open(result["video"]) as container:
        result["video_seconds"] = float(container.duration or 0) / av.time_base
    result["peak_rss_mb"] = peak / 2**20
    result["realtime"] = result["video_seconds"] / result["seconds"]
    return result


def ssim_samples(video: Path, segments: list[Segment], work: Path, samples: int = 6) -> list[float]:
    """SSIM of frames at shot midpoints against the composited picture."""
    shots = shots_of(segments)
    framer = Framer(shots, LANDSCAPE)
    counts = frame_counts([shot.seconds for shot in shots])
    scores = []
    picks = [round(i * (len(shots) - 1) / (samples - 1)) for i in range(samples)]
    starts = [sum(counts[:i]) for i in range(len(counts))]
    for index in picks:
        frame_no = starts[index] + counts[index] // 2
        reference = work / f"ref-{index:03d}.png"
        framer.composite(shots[index], shots[index].view).save(reference)
        graph = f"[0:v]select=eq(n\\,{frame_no}),format=yuv420p[a];[1:v]format=yuv420p[b];[a][b]ssim"
        done = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-hide_banner",
                "-i",
                str(video),
                "-i",
                str(reference),
                "-filter_complex",
                graph,
                "-frames:v",
                "1",
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        scores.append(float(done.stderr.rsplit("All:", 1)[1].split()[0]))
    return scores


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
        return
    with tempfile.TemporaryDirectory(prefix="bench-render-") as temp:
        work = Path(temp)
        segments = prepare(work)
        total = sum(_wav_seconds(s.audio) for s in segments)
        print(f"chapter: {len(segments)} panels, narration {total:.1f} s, 1920x1080 @ {FPS} fps")
        ways = ["ours", "ours-push", "ffmpeg", "moviepy"]
        ways += ["ours-espeak"] if (work / "audio-espeak").is_dir() else []
        results = {way: measure(way, work) for way in ways}
        for way, r in results.items():
            print(
                f"{way:<11} wall {r['seconds']:7.2f} s  video {r['video_seconds']:6.1f} s  "
                f"realtime {r['realtime']:6.2f}x  peak RSS {r['peak_rss_mb']:6.0f} MB"
            )
        scores = ssim_samples(Path(results["ours"]["video"]), segments, work)
        print("ours SSIM at 6 shot midpoints: " + ", ".join(f"{s:.4f}" for s in scores))
    ours = results["ours"]
    vs_moviepy = results["moviepy"]["seconds"] / ours["seconds"]
    vs_ffmpeg = results["ffmpeg"]["seconds"] / ours["seconds"]
    checks = [
        (
            ours["realtime"] >= TARGET_REALTIME,
            f"ours {ours['realtime']:.1f}x realtime >= {TARGET_REALTIME:g}x",
        ),
        (
            results["ours-push"]["realtime"] >= TARGET_PUSH_REALTIME,
            f"ours-push {results['ours-push']['realtime']:.1f}x realtime >= {TARGET_PUSH_REALTIME:g}x",
        ),
        (
            vs_moviepy >= TARGET_VS_MOVIEPY,
            f"ours {vs_moviepy:.1f}x faster than moviepy >= {TARGET_VS_MOVIEPY:g}x",
        ),
        (
            max(ours["peak_rss_mb"], results["ours-push"]["peak_rss_mb"]) <= TARGET_RSS_MB,
            f"ours peak RSS {ours['peak_rss_mb']:.0f} MB, push {results['ours-push']['peak_rss_mb']:.0f} MB "
            f"<= {TARGET_RSS_MB:g} MB",
        ),
        (min(scores) >= TARGET_SSIM, f"ours min SSIM {min(scores):.4f} >= {TARGET_SSIM}"),
    ]
    for ok, text in checks:
        print(f"{verdict(ok)}: {text}")
    print(f"ours vs one-pass ffmpeg: {vs_ffmpeg:.1f}x faster")
    print(
        f"SUMMARY render: ours {ours['realtime']:.1f}x realtime, push {results['ours-push']['realtime']:.1f}x, "
        f"{vs_moviepy:.0f}x moviepy, "
        f"{vs_ffmpeg:.1f}x ffmpeg one-pass, {ours['peak_rss_mb']:.0f} MB, SSIM>={min(scores):.3f} -> "
        f"{verdict(all(ok for ok, _ in checks))}"
    )


if __name__ == "__main__":
    main()
