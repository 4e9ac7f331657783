"""The music bed: ducked 12-15 dB under the voice (measured on the rendered file: the bed's
level under speech against its level in a pause), the mix at -14 LUFS with the true peak
under -1 dBTP, the demo's generated bed, and which track of MUSIC_DIR a job gets."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.render import ducking, sample_music
from services.pipeline.providers.render.narration_audio import music_tracks
from services.pipeline.providers.render.render_local import Segment, render_video
from services.pipeline.quality import judge, measure
from services.pipeline.settings import PipelineSettings
from services.pipeline.tasks.render_task import music_for
from services.pipeline.workspace import Workspace

BED_HZ = 2000.0  # far above the tone voice (196 and 233 Hz): the bed's own band
RATE = 48_000


def _wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(array.array("h", (np.clip(samples, -1, 1) * 32767).astype(np.int16)).tobytes())
    return path


def _speech(seconds: float) -> np.ndarray:
    """A voice stand-in: words of two tones at 196 and 233 Hz, 0.3 s each, 0.08 s apart."""
    t = np.arange(int(seconds * RATE)) / RATE
    word = np.floor(t / 0.38)
    inside = (t - word * 0.38) < 0.3
    tone = np.where(word % 2 == 0, np.sin(2 * np.pi * 196 * t), np.sin(2 * np.pi * 233 * t))
    return 0.4 * tone * inside


def _band_db(samples: np.ndarray, rate: int, start: float, seconds: float = 0.5) -> float:
    """The level of the bed's band (BED_HZ ± 40 Hz) in a window of the mix, in dB."""
    part = samples[int(start * rate) : int((start + seconds) * rate)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    band = spectrum[(freqs > BED_HZ - 40) & (freqs < BED_HZ + 40)]
    return 20 * math.log10(np.sqrt(np.sum(band**2)) + 1e-12)


def test_the_gain_ducks_under_speech_holds_across_short_gaps_and_comes_back_in_pauses() -> None:
    speech = np.zeros(700, dtype=bool)
    speech[100:400] = True
    speech[420:450] = True  # 0.2 s of silence between two words: shorter than the hold
    gains = ducking.frame_gains_db(speech)
    assert gains[90] == pytest.approx(0.0)
    assert gains[120:400].max() < -13.0 and gains[200] == pytest.approx(-ducking.DUCK_DB, abs=0.01)
    assert gains[400:420].max() < -13.0  # held down between the words
    assert gains[699] > -0.5  # back up in the pause, after the release
    assert gains[460] > gains[455] > gains[450]  # a gentle swell, not a jump
    assert ducking.frame_gains_db(np.zeros(0, dtype=bool)).size == 0


def test_speech_is_found_whatever_the_voice_level() -> None:
    voice = np.concatenate([np.zeros(RATE), _speech(2.0), np.zeros(RATE)])
    loud = ducking.speech_frames(ducking.frame_levels_db(voice, RATE))
    quiet = ducking.speech_frames(ducking.frame_levels_db(voice * 0.01, RATE))
    assert (loud == quiet).all() and not loud[:100].any() and loud[110:290].mean() > 0.7
    assert not ducking.speech_frames(ducking.frame_levels_db(np.zeros(RATE), RATE)).any()


def test_the_bed_is_ducked_12_to_15_db_under_the_voice_in_the_rendered_file(tmp_path: Path) -> None:
    # three spoken segments with a 3 s pause after each: the bed is measured in both
    parts = []
    for n in range(3):
        parts.append(_wav(tmp_path / f"seg-{n}.wav", np.concatenate([_speech(4.0), np.zeros(3 * RATE)])))
    t = np.arange(10 * RATE) / RATE
    music = tmp_path / "music"
    music.mkdir()
    _wav(music / "bed.wav", 0.3 * np.sin(2 * np.pi * BED_HZ * t))
    panels = sample_chapter.draw_panels(tmp_path / "panels", 3)
    segments = [Segment(panel, "Minh gặp rồng trên núi", part) for panel, part in zip(panels, parts, strict=True)]
    result = render_video(segments, tmp_path / "video.mp4", size=(640, 360), music=music_tracks(music)[0])
    with av.open(str(result.path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        mix = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    under, pause = [], []
    for n in range(3):  # past the 2 s fade-in, and short of the 3 s fade-out at the end
        begin = n * 7.0
        under += [_band_db(mix, rate, begin + 2.5), _band_db(mix, rate, begin + 3.2)]
        if n < 2:
            pause += [_band_db(mix, rate, begin + 5.5)]  # 1.5 s into the pause: the release is done
    ducked = np.mean(pause) - np.mean(under)
    assert 12.0 <= ducked <= 15.0, f"the bed is {ducked:.1f} dB lower under speech"
    assert max(under) - min(under) < 1.5  # steady under the voice, no pumping
    figures = measure(result.path).to_dict()
    assert -15.0 <= figures["loudness_lufs"] <= -13.0 and figures["true_peak_dbtp"] <= -1.0
    assert not {f.figure for f in judge(figures)} & {"loudness_lufs", "true_peak_dbtp", "end_difference_seconds"}
    plain = render_video(segments, tmp_path / "plain.mp4", size=(640, 360))  # no music: no bed
    with av.open(str(plain.path)) as container:
        stream = container.streams.audio[0]
        dry = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    assert _band_db(dry, rate, 5.5) < np.mean(pause) - 40


def test_the_demo_bed_is_a_soft_loop_made_here(tmp_path: Path) -> None:
    path = sample_music.make_bed(tmp_path / "music")
    assert path.name == "demo-bed.flac" and music_tracks(tmp_path / "music") == [path]
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        samples = samples.astype(np.float64) / (2**31 if samples.dtype == np.int32 else 1.0)
        rate = stream.codec_context.sample_rate
    assert len(samples) / rate == pytest.approx(sample_music.BED_SECONDS, abs=0.05)
    assert 0.05 < np.sqrt(np.mean(samples**2)) < 0.5 and np.abs(samples).max() < 1.0
    # the end meets the start: looped, it does not click
    assert abs(float(samples[-1]) - float(samples[0])) < 0.05
    assert sample_music.make_bed(tmp_path / "music").stat().st_mtime == path.stat().st_mtime  # kept


def test_a_job_gets_one_track_of_the_music_folder_and_none_without_one(tmp_path: Path) -> None:
    settings = PipelineSettings.embedded()
    work = Workspace(tmp_path, "job-1")
    assert music_for(work, settings) is None  # no DATA_DIR/music: a video without music
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "notes.txt").write_text("not music")
    assert music_for(work, settings) is None
    for name in ("b.mp3", "a.flac", "c.ogg"):
        (folder / name).write_bytes(b"")
    assert music_tracks(folder) == [folder / "a.flac", folder / "b.mp3", folder / "c.ogg"]
    picks = {music_for(Workspace(tmp_path, f"job-{n}"), settings) for n in range(12)}
    assert picks == set(music_tracks(folder))  # turning over from job to job
    assert music_for(work, settings) == music_for(work, settings)  # the same on a re-render
    own = tmp_path / "own"
    own.mkdir()
    (own / "x.m4a").write_bytes(b"")
    mine = PipelineSettings.from_values({"music_dir": str(own)})
    assert music_for(work, mine) == own / "x.m4a"
