"""What each frame of a render shows, and how it is drawn (the render's compositor).

``pictures`` turns the planned shots (``rhythm.plan_shots``) into a timeline of pictures,
a push-in's moving frames one by one and each still view for its frame count, and
composites each on a helper thread a few ahead of the encoder (``render_local``).
``Framer`` draws them: each panel (or the view of it a shot shows) scaled to fill the frame
as far as its shape allows over a blurred, darkened copy of itself, with the subtitle at
the bottom of the safe area (``framing.py`` says where), and converts them to YUV 4:2:0.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from services.pipeline.providers.fonts import font_path, wrap_text
from services.pipeline.providers.render.framing import Layout, layout, safe_box
from services.pipeline.providers.render.rhythm import PUSH_SECONDS, Shot, View

__all__ = ["BACKDROP_BRIGHTNESS", "FPS", "Framer", "caption_of", "composite", "pictures"]

FPS = 30
BACKDROP_BRIGHTNESS = 0.45  # the blurred copy round a panel, darkened so the panel stands out


@dataclass(frozen=True)
class _Picture:
    """One picture of the encoding: a shot's view for ``count`` frames; a moving frame
    (a push-in's) is shown once and encoded as it is, a still one is repeated."""

    shot: Shot
    view: View
    count: int
    moving: bool = False
    cut: bool = False  # the first picture of its framing: a keyframe


def _ease(t: float) -> float:
    """Smoothstep: a push starts and settles gently."""
    return t * t * (3 - 2 * t)


def _between(a: View, b: View, t: float) -> View:
    start, end = (a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1)
    return View(*(x + (y - x) * t for x, y in zip(start, end, strict=True)))


def _timeline(shots: Sequence[Shot], counts: Sequence[int]) -> Iterator[_Picture]:
    """The pictures of the shots in order: a push-in's moving frames (over PUSH_SECONDS,
    or the whole shot when it is shorter), then the view held for the rest."""
    framing = None
    for shot, count in zip(shots, counts, strict=True):
        if count <= 0:
            continue
        cut, framing = shot.framing != framing, shot.framing
        moving = min(count - 1, round(PUSH_SECONDS * FPS)) if shot.push_from is not None else 0
        for i in range(moving):
            yield _Picture(shot, _between(shot.push_from, shot.view, _ease(i / moving)), 1, True, cut and i == 0)
        yield _Picture(shot, shot.view, count - moving, False, cut and not moving)


def pictures(
    shots: Sequence[Shot], counts: Sequence[int], size: tuple[int, int], ahead: int = 3
) -> Iterator[tuple[_Picture, av.VideoFrame]]:
    """Each picture of the timeline with its YUV frame.

    The frames are composited and converted on a helper thread, at most ``ahead`` in
    advance, while the caller encodes: Pillow and libx264 both release the GIL, so on two
    cores the compositing hides behind the encoding, and memory stays at a few frames.
    """
    framer = Framer(shots, size)
    timeline = _timeline(shots, counts)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="composite") as helper:
        pending: deque[tuple[_Picture, Future[av.VideoFrame]]] = deque()

        def submit() -> None:
            picture = next(timeline, None)
            if picture is not None:
                pending.append((picture, helper.submit(framer.yuv, picture)))

        for _ in range(ahead):
            submit()
        while pending:
            picture, frame = pending.popleft()
            submit()
            yield picture, frame.result()


class Framer:
    """Composites the pictures of a plan, reusing what the shots of a framing share.

    The shots of one framing show one view of one panel with the same layout (the caption
    height is the tallest of their lines, so the panel does not jump when a line changes):
    the backdrop and the framed panel are made once per framing (Pillow, bicubic), and each
    line only draws its caption. A framing that pushes in is drawn by OpenCV instead: the
    panel is scaled once to the push's closest view, and each frame maps the view of the
    moment onto the panel's box (``warpAffine``, bilinear, a few milliseconds) over the
    framing's backdrop and caption. Every picture goes to YUV 4:2:0 (BT.601, video range,
    as libswscale makes it) by ``cvtColor``.
    """

    def __init__(self, shots: Sequence[Shot], size: tuple[int, int]) -> None:
        self.size = size
        self.heights: dict[int, int] = {}
        for shot in shots:
            height = caption_of(shot.subtitle, size)[3]
            self.heights[shot.framing] = max(height, self.heights.get(shot.framing, 0))
        self.pushing = {shot.framing for shot in shots if shot.push_from is not None}
        self._panel: tuple[Path, Image.Image] | None = None
        self._backdrop: tuple[Path, Image.Image] | None = None
        self._layer: tuple[tuple[Any, ...], Image.Image] | None = None
        self._scaled: tuple[int, np.ndarray, tuple[float, float]] | None = None
        self._base: tuple[tuple[int, str], np.ndarray, tuple[np.ndarray, np.ndarray] | None] | None = None

    def yuv(self, picture: _Picture) -> av.VideoFrame:
        if picture.shot.framing in self.pushing:
            rgb = self.moving(picture.shot, picture.view)
        else:
            rgb = np.asarray(self.composite(picture.shot, picture.view))
        return av.VideoFrame.from_ndarray(_cv2().cvtColor(rgb, _cv2().COLOR_RGB2YUV_I420), format="yuv420p")

    def plan(self, shot: Shot, view: View) -> Layout:
        return layout(view.pixels(self.panel(shot.panel).size), self.size, self.heights.get(shot.framing, 0))

    def composite(self, shot: Shot, view: View) -> Image.Image:
        """A still picture: the framing's layer (backdrop and panel) and the shot's line."""
        plan = self.plan(shot, view)
        key = (shot.panel, view, plan)
        if self._layer is None or self._layer[0] != key:
            panel = self.panel(shot.panel)
            layer = self.backdrop(shot.panel).copy()
            fitted = panel.resize(
                (plan.panel.width, plan.panel.height), Image.Resampling.BICUBIC, box=view.box(panel.size),
                reducing_gap=2.0,
            )
            layer.paste(fitted, (plan.panel.x0, plan.panel.y0))
            self._layer = (key, layer)
        canvas = self._layer[1].copy()
        _caption(canvas, shot.subtitle, plan)
        return canvas

    def moving(self, shot: Shot, view: View) -> np.ndarray:
        """A frame of a pushing framing, ``view`` of the panel on the framing's box (RGB)."""
        cv2 = _cv2()
        plan = self.plan(shot, shot.view)  # the push keeps the view's shape: one box throughout
        box = plan.panel
        if self._scaled is None or self._scaled[0] != shot.framing:
            panel = self.panel(shot.panel)
            scale = box.width / shot.view.pixels(panel.size)[0]  # the closest view at 1:1
            size = (max(1, round(panel.width * scale)), max(1, round(panel.height * scale)))
            source = np.asarray(panel)
            way = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            self._scaled = (shot.framing, cv2.resize(source, size, interpolation=way), size)
        _, scaled, (sw, sh) = self._scaled
        if self._base is None or self._base[0] != (shot.framing, shot.subtitle):
            base = self.backdrop(shot.panel).copy()
            overlay = None
            if plan.over_panel:  # the caption goes over the moving panel: kept apart to blend
                layer = Image.new("RGBA", self.size, (0, 0, 0, 0))
                _caption(layer, shot.subtitle, plan)
                rgba = np.asarray(layer.crop((box.x0, box.y0, box.x1, box.y1))).astype(np.float32)
                overlay = (rgba[..., :3], rgba[..., 3:] / 255.0)
            else:
                _caption(base, shot.subtitle, plan)
            self._base = ((shot.framing, shot.subtitle), np.array(base), overlay)
        _, base, overlay = self._base
        ax = (view.x1 - view.x0) * sw / box.width
        ay = (view.y1 - view.y0) * sh / box.height
        matrix = np.array(
            [[ax, 0.0, view.x0 * sw + 0.5 * ax - 0.5], [0.0, ay, view.y0 * sh + 0.5 * ay - 0.5]], dtype=np.float64
        )
        warped = cv2.warpAffine(
            scaled, matrix, (box.width, box.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if overlay is not None:
            rgb, alpha = overlay
            warped = (warped * (1.0 - alpha) + rgb * alpha).astype(np.uint8)
        frame = base.copy()
        frame[box.y0 : box.y1, box.x0 : box.x1] = warped
        return frame

    def panel(self, path: Path) -> Image.Image:
        if self._panel is None or self._panel[0] != path:
            with Image.open(path) as image:
                self._panel = (path, image.convert("RGB"))
        return self._panel[1]

    def backdrop(self, path: Path) -> Image.Image:
        if self._backdrop is None or self._backdrop[0] != path:
            self._backdrop = (path, _backdrop(self.panel(path), self.size))
        return self._backdrop[1]


def _cv2() -> Any:
    import cv2  # loaded when a video is rendered, not when the daemon starts

    return cv2


def composite(shot: Shot, size: tuple[int, int]) -> Image.Image:
    """The still picture of one shot, framed as the render frames it when the shot is the
    only one of its framing (the benchmark's reference)."""
    return Framer([shot], size).composite(shot, shot.view)


def _caption(canvas: Image.Image, subtitle: str, plan: Layout) -> None:
    """The subtitle burned in at the bottom of the safe area, over a translucent band
    when it lies over the panel so the text reads over the drawing."""
    if plan.caption is None or not subtitle.strip():
        return
    box = plan.caption
    font, lines, line_height, _ = caption_of(subtitle, canvas.size)
    if plan.over_panel:
        band = Image.new("L", (box.width, box.height), 150)
        canvas.paste(Image.new("RGB", band.size, (0, 0, 0)), (box.x0, box.y0), band)
    draw = ImageDraw.Draw(canvas)
    top = box.y1 - (line_height * len(lines) + line_height // 2)  # the lines sit at the bottom
    for n, line in enumerate(lines):
        x = box.x0 + (box.width - draw.textlength(line, font=font)) / 2
        draw.text(
            (x, top + line_height // 4 + n * line_height),
            line,
            font=font,
            fill=(255, 255, 255),
            stroke_width=max(2, font.size // 14),
            stroke_fill=(0, 0, 0),
        )


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
