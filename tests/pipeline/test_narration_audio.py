"""The narration track: loudness arithmetic, peaky voices brought near -14 LUFS, cancel."""

from __future__ import annotations

import math
import shutil
import threading
import wave
from pathlib import Path

import av
import pytest

from services.pipeline.providers.render import narration_audio
from services.pipeline.providers.render.narration_audio import (
    NarrationJob,
    gain_db,
    makeup_gain_db,
    measure_lufs,
)
from services.pipeline.providers.tts import tts_local


@pytest.mark.parametrize(
    ("measured", "gain"),
    [(-20.0, 6.0), (-14.0, 0.0), (-9.5, -4.5), (-70.0, 30.0), (float("-inf"), 30.0), (30.0, -30.0)],
)
def test_gain_reaches_the_target_within_bounds(measured: float, gain: float) -> None:
    assert gain_db(measured) == pytest.approx(gain)


@pytest.mark.parametrize(
    ("gain", "limited", "first", "final"),
    [
        (6.0, -16.0, 6.0, 8.0),  # the limiter took 2 LU: add them back
        (6.0, -14.0, 6.0, 6.0),  # nothing lost
        (6.0, -13.2, 6.0, 6.0),  # above the target: never lower than the gain tried
        (6.0, -40.0, 6.0, 12.0),  # at most MAX_MAKEUP_DB above the plain gain
        (10.0, -16.0, 6.0, 12.0),  # ... counted from the plain gain, across rounds
        (28.0, -20.0, 28.0, 30.0),  # never past MAX_GAIN_DB
    ],
)
def test_makeup_gain_adds_back_what_the_limiter_took(
    gain: float, limited: float, first: float, final: float
) -> None:
    assert makeup_gain_db(gain, limited, first_gain=first) == pytest.approx(final)


def _voice_like(path: Path, seconds: float, rate: int = 24_000, scale: float = 0.25) -> Path:
    """A harmonic tone swelling and fading twice a second, peaking at ``scale`` of full scale."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        burst = 0.55 + 0.45 * math.sin(2 * math.pi * 2 * t)
        tone = 0.6 * math.sin(2 * math.pi * 180 * t) + 0.4 * math.sin(2 * math.pi * 720 * t)
        value = scale * burst * tone
        frames += int(max(-1.0, min(1.0, value)) * 32767).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))
    return path


def test_a_quiet_voice_ends_near_minus_14_lufs_in_mono_aac_48k(tmp_path: Path) -> None:
    parts = [_voice_like(tmp_path / f"part{i}.wav", 3.0) for i in range(3)]
    job = NarrationJob(parts, tmp_path / "narration.m4a", tmp_path).start()
    track = job.result()
    assert job.measured_lufs is not None and job.measured_lufs < -16.0  # it needed gain
    assert -15.0 <= measure_lufs(track) <= -13.0
    with av.open(str(track)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate, stream.channels) == ("aac", 48_000, 1)
        assert abs(float(stream.duration * stream.time_base) - 9.0) < 0.05
    assert not list(tmp_path.glob(".*.joined.wav"))  # the intermediate WAV is gone


def test_espeak_ngs_peaky_voice_is_brought_near_minus_14_lufs(tmp_path: Path) -> None:
    # espeak-ng is optional for the product; `make test` installs it so this runs
    assert shutil.which("espeak-ng"), "espeak-ng missing: run `make test`, which installs it"
    text = "Minh gặp ông rồng hiền lành trên đỉnh núi. Lan ngạc nhiên nhìn lên bầu trời. " * 3
    parts = [tts_local.synthesize(text, tmp_path / f"v{i}.wav", engine="espeak-ng").path for i in range(2)]
    job = NarrationJob(parts, tmp_path / "narration.m4a", tmp_path).start()
    assert job.result().exists()
    assert job.measured_lufs is not None and job.measured_lufs < -17.0  # espeak-ng speaks quietly
    assert -15.0 <= measure_lufs(tmp_path / "narration.m4a") <= -13.0


def test_a_broken_part_fails_with_ffmpegs_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav")
    job = NarrationJob([broken], tmp_path / "narration.m4a", tmp_path).start()
    with pytest.raises(RuntimeError, match="could not prepare the narration"):
        job.result()
    assert not (tmp_path / "narration.m4a").exists()


def test_cancel_stops_the_work_and_leaves_no_track(tmp_path: Path, monkeypatch) -> None:
    parts = [_voice_like(tmp_path / "part.wav", 20.0)]
    steps: list[tuple[str, ...]] = []
    measuring = threading.Event()
    job = NarrationJob(parts, tmp_path / "narration.m4a", tmp_path)
    real = job._ffmpeg

    def recorded(*args: str) -> str:
        steps.append(args)
        if len(steps) == 2:
            measuring.set()
        return real(*args)

    monkeypatch.setattr(job, "_ffmpeg", recorded)
    job.start()
    assert measuring.wait(10)
    job.cancel()  # kills the measuring ffmpeg, or stops the step after it
    with pytest.raises(RuntimeError, match="cancelled"):
        job.result()
    assert len(steps) <= 3  # the encode never ran
    assert not (tmp_path / "narration.m4a").exists()
    assert not list(tmp_path.glob(".*.joined.wav"))


def test_an_empty_narration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no segments"):
        NarrationJob([], tmp_path / "n.m4a", tmp_path)


def test_measure_reports_what_ebur128_prints(tmp_path: Path) -> None:
    quiet = _voice_like(tmp_path / "quiet.wav", 2.0)
    louder = measure_lufs(quiet, "volume=6dB")
    assert louder - measure_lufs(quiet) == pytest.approx(6.0, abs=0.3)
    assert narration_audio.TARGET_LUFS == -14.0
