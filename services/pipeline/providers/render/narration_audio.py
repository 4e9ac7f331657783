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

__all__ = ["NarrationJob", "gain_db", "makeup_gain_db", "measure_lufs"]

SAMPLE_RATE = 48_000
TARGET_LUFS = -14.0
PEAK_LIMIT_DBFS = -1.5
MAX_GAIN_DB = 30.0  # a near-silent track is not blown up past this
MAX_MAKEUP_DB = 6.0  # the most extra gain that makes up for what the limiter took
MAKEUP_ROUNDS = 2  # measurements through the limiter before the final pass
CLOSE_ENOUGH_LU = 0.5
BITRATE = "128k"
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


class NarrationJob:
    """Make the narration track for ``parts`` into ``output`` on a background thread."""

    def __init__(self, parts: Sequence[Path], output: Path, work_dir: Path) -> None:
        if not parts:
            raise ValueError("no narration to make: no segments")
        self._parts = list(parts)
        self._output = output
        self._joined = work_dir / f".{output.stem}.joined.wav"
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
        self._joined.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            self._ffmpeg(*self._concat_args(), "-c:a", "pcm_f32le", str(self._joined))
            self.measured_lufs = measure_lufs(self._joined, run=self._ffmpeg)
            first = gain = gain_db(self.measured_lufs)
            for _ in range(MAKEUP_ROUNDS):
                limited = measure_lufs(self._joined, _gain_filter(gain), run=self._ffmpeg)
                if limited >= TARGET_LUFS - CLOSE_ENOUGH_LU:
                    break
                gain = makeup_gain_db(gain, limited, first_gain=first)
            self.applied_gain_db = gain
            self._ffmpeg(
                "-i",
                str(self._joined),
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
            self._joined.unlink(missing_ok=True)

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


def measure_lufs(path: Path, filters: str = "", *, run=None) -> float:
    """Integrated loudness of ``path`` (after ``filters``, if any), in LUFS."""
    chain = f"{filters},ebur128=framelog=quiet" if filters else "ebur128=framelog=quiet"
    args = ["-i", str(path), "-af", chain, "-f", "null", "-"]
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
