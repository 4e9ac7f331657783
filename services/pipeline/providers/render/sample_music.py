"""The demo's music bed: a soft pad made by ffmpeg, so a newcomer's first video has music
under the voice and the ducking can be heard (and measured) without shipping a recording.

Three sine voices of an A-minor chord (A3, C4, E4) and a low A2, each swelling slowly at
its own rate: pure tones, so nothing but the voices to hear, and 24 s that loop without
a click (every frequency and swell completes whole cycles in 24 s). Written as FLAC (about 1 MB) into the folder
MUSIC_DIR names, where a creator's own tracks would go.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

__all__ = ["BED_NAME", "BED_SECONDS", "make_bed"]

BED_NAME = "demo-bed.flac"
BED_SECONDS = 24
_VOICES = ((110.0, 0.16, 1 / 12), (220.0, 0.11, 1 / 8), (261.625, 0.08, 1 / 6), (329.625, 0.08, 1 / 4))


def make_bed(folder: Path, seconds: int = BED_SECONDS) -> Path:
    """Write the pad to ``folder/demo-bed.flac`` (kept if it is already there); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BED_NAME
    if path.exists():
        return path
    # a frequency rounded to whole cycles in the loop, so the end meets the start
    terms = [
        f"{level}*sin(2*PI*{round(freq * seconds) / seconds:.4f}*t)*(0.65+0.35*sin(2*PI*{swell}*t))"
        for freq, level, swell in _VOICES
    ]
    temp = path.with_name(f".{path.name}.part")
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"aevalsrc='{'+'.join(terms)}':s=48000:d={seconds}",
         "-c:a", "flac", "-f", "flac", str(temp)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        temp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not make the demo's music bed: {done.stderr.strip()[-300:]}")
    temp.replace(path)
    return path
