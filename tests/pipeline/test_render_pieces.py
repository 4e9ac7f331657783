"""A render made in pieces: each piece kept as it is finished, so a render started again
after an interruption (a Spot instance reclaimed) encodes only the pieces still missing,
and the video is the same as one made in one go."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.render.render_local import Segment, piece_groups, render_video
from services.pipeline.providers.render.rhythm import Shot
from services.pipeline.providers.tts import tts_local


class Folder:
    """Pieces kept in a folder; ``fail_after`` puts succeed, then the render is 'killed'."""

    def __init__(self, folder: Path, fail_after: int | None = None) -> None:
        self.folder, self.fail_after, self.put_names = folder, fail_after, []
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> Path | None:
        path = self.folder / name
        return path if path.exists() else None

    def put(self, name: str, path: Path) -> None:
        if self.fail_after is not None and len(self.put_names) >= self.fail_after:
            raise KeyboardInterrupt("the instance was reclaimed")
        shutil.copyfile(path, self.folder / name)
        self.put_names.append(name)


def _segments(tmp_path: Path, count: int = 4) -> list[Segment]:
    segments = []
    for index, panel in enumerate(sample_chapter.draw_panels(tmp_path / "panels", count)):
        text = f"Đoạn {index + 1}: Minh và Lan gặp ông rồng trên núi cao."
        speech = tts_local.synthesize(text, tmp_path / f"s{index}.wav", engine="tone")
        segments.append(Segment(panel, text, speech.path))
    return segments


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def test_pieces_start_at_a_framing_and_hold_every_shot_once() -> None:
    shots = [Shot(Path("p"), "x", 1.0, framing=f) for f in (0, 0, 1, 2, 2, 2, 3)]
    counts = [30, 30, 30, 30, 30, 30, 30]
    groups = piece_groups(shots, counts, 60)
    assert groups == [(0, 2), (2, 6), (6, 7)]  # the third piece waits for framing 2 to end
    assert [i for a, b in groups for i in range(a, b)] == list(range(7))
    for a, _ in groups[1:]:
        assert shots[a].framing != shots[a - 1].framing  # never inside a framing
    assert piece_groups(shots, counts, 10_000) == [(0, 7)] and piece_groups([], [], 60) == []
    assert piece_groups(shots, [30, 30, 30, 30, 30, 30, 0], 60) == [(0, 2), (2, 7)]  # no piece without a frame


def test_a_render_started_again_encodes_only_the_missing_pieces(tmp_path: Path) -> None:
    segments = _segments(tmp_path)
    whole = render_video(segments, tmp_path / "whole.mp4", size=(640, 360))
    kept = tmp_path / "kept"
    killed = Folder(kept, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        render_video(segments, tmp_path / "a.mp4", size=(640, 360), pieces=killed, piece_seconds=2.0)
    assert len(killed.put_names) == 1 and not (tmp_path / "a.mp4").exists()
    again = Folder(kept)
    result = render_video(segments, tmp_path / "a.mp4", size=(640, 360), pieces=again, piece_seconds=2.0)
    total = len(list(kept.glob("*.mp4")))
    assert total >= 3 and len(again.put_names) == total - 1  # the first piece was not made again
    assert killed.put_names[0] not in again.put_names
    assert result.frames == whole.frames
    made, reference = _frames(result.path), _frames(whole.path)
    assert len(made) == len(reference) == whole.frames
    assert max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(made, reference)) < 0.5
    third = Folder(kept)
    render_video(segments, tmp_path / "b.mp4", size=(640, 360), pieces=third, piece_seconds=2.0)
    assert third.put_names == []  # all there: nothing encoded
    other = Folder(kept)
    render_video(segments, tmp_path / "c.mp4", size=(640, 360), pieces=other, piece_seconds=2.0, motion="push")
    assert len(other.put_names) == total  # another plan: nothing of the first reused
