"""The narration track: segment WAVs → one AAC track at about -14 LUFS integrated.

YouTube plays everything at -14 LUFS (louder uploads are turned down, quieter ones are not
turned up), so the narration is brought there. A voice needs no dynamic processing, only
gain, and a limiter for the peaks the gain pushes past -1.5 dBFS. So, with ffmpeg (the
binary from imageio-ffmpeg):

1. the segments are concatenated once into a 48 kHz mono float WAV;
2. its integrated loudness is measured (``ebur128``, ITU-R BS.1770 with gating);
3. the gain that reaches the target is applied through the limiter and the result measured
   again: the limiter takes some loudness off a peaky voice (espeak-ng's peaks sit at
   0 dBFS), so the gain is raised by what was lost and measured once more (at most
   ``MAKEUP_ROUNDS`` times, and at most ``MAX_MAKEUP_DB`` above the plain gain, so a
   pathological track ends quieter rather than crushed);
4. the final pass applies that gain and limiter and encodes AAC-LC 48 kHz.

This costs about a quarter of ffmpeg's one-pass ``loudnorm`` (which resamples to 192 kHz
for its true-peak detector) and reaches the target closer on speech; ``gain_db`` and
``makeup_gain_db`` are the pure arithmetic.

The track is mono: the narration is one voice, and YouTube plays a mono track on both
channels. AAC uses ffmpeg's ``fast`` coder at 128 kb/s, several times faster than its
default ``twoloop`` and transparent for speech at that rate.

With a music bed (MUSIC_DIR: ``music=`` a track), between steps 2 and 3 the track is
looped to the narration's length, faded in and out, brought to ``BED_BELOW_VOICE_DB``
under the voice's loudness, ducked under the voice (``ducking.py``: the voice is the
sidechain, the bed goes down 13.5 dB where it speaks) and mixed in; steps 3 and 4 then
bring the *mix* to -14 LUFS with the true peak under -1 dBTP. The tracks between the steps
are raw 32-bit float files, read and written a few seconds at a time, so a long chapter
costs no more memory than a short one.

``NarrationJob`` runs these steps on a thread, so the renderer encodes the pictures while
the sound is made; ``cancel()`` kills the running ffmpeg.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from services.pipeline.providers.render.ducking import (
    frame_gains_db,
    frame_levels_db,
    frame_size,
    sample_gains,
    speech_frames,
)

__all__ = ["NarrationJob", "gain_db", "makeup_gain_db", "measure_lufs", "music_tracks"]

SAMPLE_RATE = 48_000
TARGET_LUFS = -14.0
PEAK_LIMIT_DBFS = -1.5
MAX_GAIN_DB = 30.0  # a near-silent track is not blown up past this
MAX_MAKEUP_DB = 6.0  # the most extra gain that makes up for what the limiter took
MAKEUP_ROUNDS = 2  # measurements through the limiter before the final pass
CLOSE_ENOUGH_LU = 0.5
BITRATE = "128k"
BED_BELOW_VOICE_DB = 12.0  # the bed in the pauses, under the voice's loudness (under speech: 13.5 dB more)
BED_FADE_IN_SECONDS = 2.0
BED_FADE_OUT_SECONDS = 3.0
CHUNK_SECONDS = 10  # the raw tracks are mixed this much at a time
MUSIC_SUFFIXES = (".mp3", ".m4a", ".aac", ".ogg", ".opus", ".flac", ".wav")
_INTEGRATED = re.compile(r"Integrated loudness:\s+I:\s+(-?[\d.]+|-inf) LUFS")


def gain_db(measured_lufs: float, target_lufs: float = TARGET_LUFS) -> float:
    """The gain that brings a track measured at ``measured_lufs`` to the target, bounded.

    A silent track measures -70 LUFS (or -inf) and gets MAX_GAIN_DB, which keeps it silent.
    """
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target_lufs - measured_lufs))


def makeup_gain_db(
    gain: float, limited_lufs: float, target_lufs: float = TARGET_LUFS, *, first_gain: float | None = None
) -> float:
    """The next gain after measuring ``limited_lufs`` with ``gain`` through the limiter.

    What the limiter took is added back, never more than MAX_MAKEUP_DB above ``first_gain``
    (the plain gain, default ``gain``) nor past MAX_GAIN_DB; a result already at or above the
    target keeps ``gain``.
    """
    base = gain if first_gain is None else first_gain
    shortfall = max(0.0, target_lufs - limited_lufs)
    return max(gain, min(MAX_GAIN_DB, base + MAX_MAKEUP_DB, gain + shortfall))


def music_tracks(folder: Path) -> list[Path]:
    """The audio files of a music folder (MUSIC_DIR), by name; none if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MUSIC_SUFFIXES)


class NarrationJob:
    """Make the narration track for ``parts`` (with ``music`` as its bed, if given) into
    ``output`` on a background thread."""

    def __init__(self, parts: Sequence[Path], output: Path, work_dir: Path, music: Path | None = None) -> None:
        if not parts:
            raise ValueError("no narration to make: no segments")
        self._parts = list(parts)
        self._output = output
        self._music = music
        self._joined = work_dir / f".{output.stem}.joined.f32"
        self._bed = work_dir / f".{output.stem}.bed.f32"
        self._mix = work_dir / f".{output.stem}.mix.f32"
        self.bed_gain_db: float | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = False
        self._error: BaseException | None = None
        self.applied_gain_db: float | None = None
        self.measured_lufs: float | None = None
        self._thread = threading.Thread(target=self._run, name="narration", daemon=True)

    def start(self) -> NarrationJob:
        self._thread.start()
        return self

    def result(self) -> Path:
        """Wait for the track; raise RuntimeError if ffmpeg could not make it."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._output

    def cancel(self) -> None:
        """Stop: kill the running ffmpeg and start no other; wait for the thread."""
        with self._lock:
            self._cancelled = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
        if self._thread.is_alive():
            self._thread.join()
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for path in (self._joined, self._bed, self._mix):
            path.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            self._ffmpeg(*self._concat_args(), "-f", "f32le", str(self._joined))
            self.measured_lufs = measure_lufs(self._joined, run=self._ffmpeg, raw=True)
            track, loudness = self._joined, self.measured_lufs
            if self._music is not None:
                track = self._with_bed(self.measured_lufs)
                loudness = measure_lufs(track, run=self._ffmpeg, raw=True)
            first = gain = gain_db(loudness)
            for _ in range(MAKEUP_ROUNDS):
                limited = measure_lufs(track, _gain_filter(gain), run=self._ffmpeg, raw=True)
                if limited >= TARGET_LUFS - CLOSE_ENOUGH_LU:
                    break
                gain = makeup_gain_db(gain, limited, first_gain=first)
            self.applied_gain_db = gain
            self._ffmpeg(
                *_RAW,
                "-i",
                str(track),
                "-af",
                _gain_filter(self.applied_gain_db),
                "-ac",
                "1",
                "-ar",
                str(SAMPLE_RATE),
                "-c:a",
                "aac",
                "-aac_coder",
                "fast",
                "-b:a",
                BITRATE,
                str(self._output),
            )
        except BaseException as error:  # handed to the caller by result()
            self._error = error
        finally:
            self._remove_temporaries()

    def _with_bed(self, voice_lufs: float) -> Path:
        """The voice with the music bed under it, ducked where it speaks (raw float)."""
        samples = self._joined.stat().st_size // 4
        seconds = samples / SAMPLE_RATE
        fade_in, fade_out = min(BED_FADE_IN_SECONDS, seconds / 3), min(BED_FADE_OUT_SECONDS, seconds / 3)
        chain = (
            f"aresample={SAMPLE_RATE},aformat=sample_fmts=flt:channel_layouts=mono,"
            f"afade=t=in:d={fade_in:.3f},afade=t=out:st={seconds - fade_out:.3f}:d={fade_out:.3f},"
            "ebur128=framelog=quiet"
        )
        err = self._ffmpeg(
            "-stream_loop", "-1", "-i", str(self._music), "-t", f"{seconds:.4f}", "-af", chain,
            "-f", "f32le", str(self._bed),
        )
        found = _INTEGRATED.search(err)
        bed_lufs = float(found.group(1)) if found and found.group(1) != "-inf" else float("-inf")
        # a silent track stays silent; a loud one is brought down to its place under the voice
        self.bed_gain_db = gain_db(bed_lufs, voice_lufs - BED_BELOW_VOICE_DB) if bed_lufs > -70 else 0.0
        scale = np.float32(10 ** (self.bed_gain_db / 20))
        chunk = CHUNK_SECONDS * SAMPLE_RATE // frame_size(SAMPLE_RATE) * frame_size(SAMPLE_RATE)
        with self._joined.open("rb") as voice:  # the sidechain: the voice's level frame by frame
            levels = [frame_levels_db(part, SAMPLE_RATE) for part in _chunks(voice, chunk)]
        gains = frame_gains_db(speech_frames(np.concatenate(levels) if levels else np.zeros(0)))
        with self._joined.open("rb") as voice, self._bed.open("rb") as bed, self._mix.open("wb") as mix:
            start = 0
            for part in _chunks(voice, chunk):
                under = np.zeros(len(part), dtype=np.float32)
                got = np.fromfile(bed, dtype=np.float32, count=len(part))
                under[: len(got)] = got
                mixed = part + under * scale * sample_gains(gains, start, len(part), SAMPLE_RATE)
                mix.write(mixed.astype(np.float32).tobytes())
                start += len(part)
        return self._mix

    def _concat_args(self) -> list[str]:
        args: list[str] = []
        for part in self._parts:
            args += ["-i", str(part)]
        streams = "".join(f"[{i}:a]" for i in range(len(self._parts)))
        graph = f"{streams}concat=n={len(self._parts)}:v=0:a=1,aresample={SAMPLE_RATE}[out]"
        return [*args, "-filter_complex", graph, "-map", "[out]", "-ac", "1"]

    def _ffmpeg(self, *args: str) -> str:
        """Run ffmpeg with ``args``; return its stderr; raise RuntimeError when it fails."""
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-y", *args]
        with self._lock:
            if self._cancelled:
                raise RuntimeError("the narration was cancelled")
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
            )
        _, err = self._process.communicate()
        if self._process.returncode != 0:
            reason = "cancelled" if self._cancelled else err.strip()[-300:]
            raise RuntimeError(f"ffmpeg could not prepare the narration: {reason}")
        return err


_RAW = ("-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1")  # how ffmpeg reads the raw tracks


def _chunks(handle, size: int):
    """``size`` float samples at a time from an open raw track."""
    while True:
        part = np.fromfile(handle, dtype=np.float32, count=size)
        if not len(part):
            return
        yield part


def measure_lufs(path: Path, filters: str = "", *, run=None, raw: bool = False) -> float:
    """Integrated loudness of ``path`` (after ``filters``, if any), in LUFS; ``raw``: the
    file is a raw mono float track at SAMPLE_RATE."""
    chain = f"{filters},ebur128=framelog=quiet" if filters else "ebur128=framelog=quiet"
    args = [*(_RAW if raw else ()), "-i", str(path), "-af", chain, "-f", "null", "-"]
    err = run(*args) if run else _run_ffmpeg(*args)
    found = _INTEGRATED.search(err)
    if not found:
        raise RuntimeError("ffmpeg's ebur128 printed no integrated loudness")
    return float("-inf") if found.group(1) == "-inf" else float(found.group(1))


def _gain_filter(gain: float) -> str:
    limit = 10 ** (PEAK_LIMIT_DBFS / 20)
    return f"volume={gain:.2f}dB,alimiter=limit={limit:.4f}:level=false"


def _run_ffmpeg(*args: str) -> str:
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-y", *args],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.strip()[-300:]}")
    return done.stderr
