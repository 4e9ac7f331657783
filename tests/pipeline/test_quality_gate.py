"""The gate before upload: a good file passes, a file made to fail each figure is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from services.pipeline.quality import judge, measure

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 40
GOOD_VIDEO = "negate=enable='mod(floor(t/4),2)'"  # testsrc2, negated every other 4 s: a cut every 4 s
GOOD_AUDIO = f"sine=frequency=1000:sample_rate=48000:duration={SECONDS},volume=2.2"  # about -14 LUFS


def make(path: Path, *, video: str = GOOD_VIDEO, audio: str = GOOD_AUDIO, seconds: int = SECONDS,
         args: tuple[str, ...] = ()) -> Path:
    """A small MP4 made by ffmpeg: testsrc2 through ``video``, ``audio`` as the sound."""
    defaults = {"-c:v": "libx264", "-preset": "veryfast", "-profile:v": "high", "-pix_fmt": "yuv420p", "-g": "60",
                "-c:a": "aac", "-ar": "48000", "-b:a": "96k", "-movflags": "+faststart"}
    given = dict(zip(args[::2], args[1::2]))
    options = [item for key, value in {**defaults, **given}.items() if value != "" for item in (key, value)]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", audio, "-vf", video, *options, str(path)],
        check=True, capture_output=True,
    )
    return path


def failing(path: Path, **kwargs) -> set[str]:
    return {failure.figure for failure in judge(measure(path, **kwargs).to_dict())}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("gate") / "good.mp4")


def test_a_good_file_passes_and_its_figures_are_what_was_made(good: Path) -> None:
    figures = measure(good, subtitles="Xin chào các bạn, hôm nay chúng ta đọc chương một!")
    assert judge(figures.to_dict()) == []
    assert (figures.video_codec, figures.video_profile, figures.pixel_format) == ("h264", "High", "yuv420p")
    assert (figures.audio_codec, figures.audio_rate, figures.faststart) == ("aac", 48000, True)
    assert figures.cuts == 9 and figures.longest_shot_seconds == pytest.approx(4.0, abs=0.05)
    assert figures.loudness_lufs == pytest.approx(-14, abs=1) and figures.true_peak_dbtp < -5
    assert figures.keyframe_gap_seconds == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("fault", "options", "expected"),
    [
        ("baseline profile", {"args": ("-profile:v", "baseline")}, "video_profile"),
        ("4:4:4 pixels", {"args": ("-pix_fmt", "yuv444p", "-profile:v", "high444")}, "pixel_format"),
        ("ALAC sound", {"args": ("-c:a", "alac", "-b:a", "")}, "audio_codec"),
        ("44.1 kHz sound", {"args": ("-ar", "44100")}, "audio_rate"),
        ("index at the end", {"args": ("-movflags", "")}, "faststart"),
        ("sound a second longer", {"audio": GOOD_AUDIO.replace(f"duration={SECONDS}", f"duration={SECONDS + 1}")},
         "end_difference_seconds"),
        ("a keyframe every 13 s", {"args": ("-g", "400", "-keyint_min", "400", "-sc_threshold", "0")},
         "keyframe_gap_seconds"),
        ("too loud", {"audio": GOOD_AUDIO.replace("volume=2.2", "volume=8")}, "loudness_lufs"),
        ("clicks past -1 dBTP", {"audio": f"aevalsrc='0.3*sin(2*PI*1000*t)+if(lt(mod(t,1),0.002),0.68,0)':"
                                          f"s=48000:d={SECONDS}"}, "true_peak_dbtp"),
        ("a cut every 10 s", {"video": "negate=enable='mod(floor(t/10),2)'"}, "cuts_per_minute"),
        ("a 20 s shot", {"video": "negate=enable='lt(t,40)*mod(floor(t/3),2)'", "seconds": 60},
         "longest_shot_seconds"),
        ("4 s of black", {"video": f"{GOOD_VIDEO},drawbox=enable='between(t,10,14)':color=black:t=fill"},
         "black_seconds"),
        ("4 s frozen", {"video": f"{GOOD_VIDEO},drawbox=enable='between(t,10,14)':color=gray:t=fill"},
         "frozen_seconds"),
    ],
)
def test_a_file_made_to_fail_a_figure_is_refused_for_it(tmp_path: Path, fault: str, options: dict, expected: str) -> None:
    seconds = options.get("seconds", SECONDS)
    audio = options.get("audio", GOOD_AUDIO)
    if seconds != SECONDS:
        audio = audio.replace(f"duration={SECONDS}", f"duration={seconds}")
    path = make(tmp_path / "bad.mp4", video=options.get("video", GOOD_VIDEO), audio=audio, seconds=seconds,
                args=options.get("args", ()))
    assert expected in failing(path), fault


def test_a_subtitle_character_the_font_lacks_is_refused(good: Path) -> None:
    figures = measure(good, subtitles="Xin chào 字")
    assert figures.missing_glyphs == ["字"]
    assert [f.figure for f in judge(figures.to_dict())] == ["missing_glyphs"]


def test_the_check_command_prints_each_failure_and_exits_1(tmp_path: Path) -> None:
    bad = make(tmp_path / "late-index.mp4", args=("-movflags", ""))
    done = subprocess.run([sys.executable, "run_scheduler.py", "check", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "faststart" in done.stdout and "FAIL" in done.stdout
    as_json = subprocess.run([sys.executable, "run_scheduler.py", "check", str(bad), "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    report = json.loads(as_json.stdout)
    assert report["passed"] is False and [f["figure"] for f in report["failures"]] == ["faststart"]
    assert report["figures"]["video_codec"] == "h264"


def test_the_check_command_passes_a_good_file_and_refuses_a_missing_one(good: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "run_scheduler.py", "check", str(good)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passes" in done.stdout
    (tmp_path / "not.mp4").write_bytes(b"no video here")
    for path in (tmp_path / "missing.mp4", tmp_path / "not.mp4"):
        refused = subprocess.run([sys.executable, "run_scheduler.py", "check", str(path)], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
