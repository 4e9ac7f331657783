"""Test helper: how long a file's picture and sound really last, by decoding them."""

from __future__ import annotations

from pathlib import Path

import av


def played_seconds(path: Path) -> tuple[float, float]:
    """(video, audio) seconds as a player shows them: frames / rate and decoded samples / rate.

    Container duration fields include the AAC encoder's priming and padding, which players
    drop (the MP4 edit list); counting decoded samples is what the viewer hears.
    """
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio=0))
        sample_rate = stream.codec_context.sample_rate
    return frames / float(rate), samples / sample_rate
