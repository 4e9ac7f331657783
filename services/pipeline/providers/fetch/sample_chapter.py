"""Make a sample manga chapter: drawn pages of several panels, Vietnamese speech bubbles, no downloads.

The embedded fetch source reads chapters from a folder; this module fills that folder with
a chapter anyone may publish (it is drawn here). Each page (1000×1400) holds up to four
panels in a manga layout (``sample_pages.py``: gutters, black frames, a tall panel on the
right, a wide one across) to be read right to left, as Japanese manga are, so a
newcomer's first video already shows the pages cut into panels, their order, the framing
and the cuts. Each panel is drawn at its own size: sky and ground, two round-headed
characters, and a speech bubble whose line of a short Vietnamese story is set in Be
Vietnam Pro (the font package covers Vietnamese). The drawing is deterministic: the same
chapter number always gives the same bytes.

Layout on disk (what ``LocalFolderSource`` reads)::

    <samples>/<manga_id>/manga.json               {"manga_id", "title", "reading_direction": "rtl", "chapters": [...]}
    <samples>/<manga_id>/chapter-0001/page-01.png ...
    <samples>/<manga_id>/chapter-0001/chapter.json  {"chapter", "title", "lines": [...]}

A line names its panel as ``page-01.png#2``: the page's second panel in reading order.
``manga.json`` records which chapters were made, so a chapter is never made twice.

Run: ``python -m services.pipeline.providers.fetch.sample_chapter [--samples DIR] [--panels N]``
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from services.pipeline.providers.fetch.sample_pages import draw_page, layout_boxes
from services.pipeline.providers.fonts import font_path, wrap_text
from services.scheduler.atomic_file import write_atomic

__all__ = ["SAMPLE_MANGA_ID", "SAMPLE_TITLE", "STORY", "draw_panels", "make_chapter", "next_chapter_number"]

SAMPLE_MANGA_ID = "cau-be-va-con-rong"
SAMPLE_TITLE = "Cậu bé và con rồng"
DEFAULT_PANELS = 12
PAGE_LAYOUTS = {4: ("four", "tall"), 3: ("three",), 2: ("two",), 1: ("one",)}
"""The layouts a page of that many panels takes, in turn."""

STORY = (
    ("Minh", "Sáng nay trời đẹp quá! Mình sẽ lên núi hái nấm."),
    ("Lan", "Cẩn thận nhé Minh, người ta nói trên núi có rồng đấy."),
    ("Minh", "Rồng à? Mình không sợ đâu!"),
    ("Rồng", "Ai đang đi trên núi của ta thế?"),
    ("Minh", "Chào ông rồng! Cháu tên là Minh, cháu đi hái nấm."),
    ("Rồng", "Hừm... Đã lâu lắm rồi không ai dám nói chuyện với ta."),
    ("Lan", "Minh ơi! Cậu có sao không?"),
    ("Minh", "Không sao đâu Lan, ông rồng hiền lắm!"),
    ("Rồng", "Các cháu có muốn bay một vòng quanh núi không?"),
    ("Lan", "Thật ạ? Tuyệt quá!"),
    ("Minh", "Nhìn kìa, cả ngôi làng nhỏ xíu dưới kia!"),
    ("Rồng", "Hẹn gặp lại các cháu vào ngày mai nhé."),
    ("Lan", "Ngày mai mình lại lên núi nữa nhé Minh!"),
    ("Minh", "Nhất định rồi! Tạm biệt ông rồng!"),
)

_SKIES = ((135, 196, 235), (250, 214, 165), (176, 224, 230), (255, 228, 196))
_COLOURS = {"Minh": (52, 101, 164), "Lan": (204, 68, 102), "Rồng": (60, 150, 80)}


def next_chapter_number(samples: Path, manga_id: str = SAMPLE_MANGA_ID) -> int:
    """The number the next sample chapter gets (1 for an empty folder)."""
    made = _read_manga(samples / manga_id).get("chapters", [])
    return max((c["chapter"] for c in made), default=0) + 1


def make_chapter(samples: Path, *, panels: int = DEFAULT_PANELS, manga_id: str = SAMPLE_MANGA_ID) -> Path:
    """Draw the next chapter of the sample manga under ``samples``; return its folder."""
    if panels < 1:
        raise ValueError("a chapter needs at least one panel")
    number = next_chapter_number(samples, manga_id)
    folder = samples / manga_id / f"chapter-{number:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    index = 0
    for page_number, count in enumerate(_page_sizes(panels), start=1):
        layout = PAGE_LAYOUTS[count][page_number % len(PAGE_LAYOUTS[count])]
        arts = []
        name = f"page-{page_number:02d}.png"
        for place, (box, _inset) in enumerate(layout_boxes(layout), start=1):
            speaker, text = STORY[(index + (number - 1) * 3) % len(STORY)]
            arts.append(_draw_panel(number, index, speaker, text, (box.width, box.height)))
            lines.append({"panel": f"{name}#{place}", "speaker": speaker, "text": text})
            index += 1
        page, _ = draw_page(layout, arts=arts, seed=number * 100 + page_number)
        page.save(folder / name, format="PNG", optimize=True)
    title = f"{SAMPLE_TITLE} - Chương {number}"
    chapter = {"chapter": number, "title": title, "lines": lines}
    write_atomic(folder / "chapter.json", _json(chapter))
    manga = _read_manga(samples / manga_id)
    manga.update(manga_id=manga_id, title=SAMPLE_TITLE, reading_direction="rtl")
    manga.setdefault("chapters", []).append({"chapter": number, "folder": folder.name, "panels": panels})
    write_atomic(samples / manga_id / "manga.json", _json(manga))
    return folder


def draw_panels(folder: Path, count: int, *, size: tuple[int, int] = (800, 1100)) -> list[Path]:
    """``count`` single drawn panels as ``panel-001.png`` ... in ``folder``: pictures for a
    renderer or a thumbnail without pages to cut (tests, tools); the same story lines."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        speaker, text = STORY[index % len(STORY)]
        picture = _draw_panel(1, index, speaker, text, size)
        ImageDraw.Draw(picture).rectangle((0, 0, size[0] - 1, size[1] - 1), outline=(20, 20, 20), width=8)
        path = folder / f"panel-{index + 1:03d}.png"
        picture.save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths


def _page_sizes(panels: int) -> list[int]:
    """How many panels each page holds: fours, the rest on the last page (3, 2 or 1)."""
    sizes = [4] * (panels // 4)
    return sizes + ([panels % 4] if panels % 4 else [])


def _draw_panel(chapter: int, index: int, speaker: str, text: str, size: tuple[int, int]) -> Image.Image:
    """One panel's drawing at ``size``: the page draws its frame round it."""
    rng = random.Random(chapter * 1000 + index)
    width, height = size
    unit = min(width / 800, height / 1100)  # the figures' scale: 1 in an 800×1100 panel
    image = Image.new("RGB", size, _SKIES[(chapter + index) % len(_SKIES)])
    draw = ImageDraw.Draw(image)
    ground = int(height * 0.78)
    draw.rectangle((0, ground, width, height), fill=(110, 170, 90))
    for _ in range(3):  # hills
        x = rng.randint(-100, width)
        draw.ellipse((x, ground - int(140 * unit), x + int(420 * unit), ground + int(140 * unit)), fill=(90, 150, 80))
    sun = int(100 * unit)
    draw.ellipse((width - sun - 30, height // 3, width - 30, height // 3 + sun), fill=(255, 220, 90))
    for offset, who in ((0.3, speaker), (0.7, "Lan" if speaker != "Lan" else "Minh")):
        _draw_character(draw, int(width * offset), ground, _COLOURS.get(who, (120, 120, 120)), rng, unit)
    _draw_bubble(draw, text, speaker, width, unit)
    return image


def _draw_character(
    draw: ImageDraw.ImageDraw, x: int, ground: int, colour: tuple[int, int, int], rng: random.Random, unit: float
) -> None:
    def u(value: float) -> int:
        return int(value * unit)

    top = ground - u(260) - rng.randint(0, u(40))
    draw.rectangle((x - u(45), top + u(110), x + u(45), ground), fill=colour, outline=(20, 20, 20), width=4)
    draw.ellipse((x - u(60), top, x + u(60), top + u(120)), fill=(255, 224, 189), outline=(20, 20, 20), width=4)
    draw.ellipse((x - u(28), top + u(45), x - u(12), top + u(61)), fill=(20, 20, 20))
    draw.ellipse((x + u(12), top + u(45), x + u(28), top + u(61)), fill=(20, 20, 20))
    draw.arc((x - u(25), top + u(60), x + u(25), top + u(95)), start=20, end=160, fill=(20, 20, 20), width=3)


def _draw_bubble(draw: ImageDraw.ImageDraw, text: str, speaker: str, width: int, unit: float) -> None:
    size = max(20, int(40 * unit))
    font = ImageFont.truetype(str(font_path("Bold")), size)
    name_font = ImageFont.truetype(str(font_path("Regular")), max(16, int(size * 0.75)))
    margin = max(20, width // 16)
    lines = wrap_text(draw, text, font, width - 2 * margin - 2 * size)
    line_height = int(size * 1.3)
    box = (margin, margin, width - margin, margin + int(size * 1.9) + line_height * len(lines))
    draw.rounded_rectangle(box, radius=size, fill=(255, 255, 255), outline=(20, 20, 20), width=4)
    tail = box[0] + (box[2] - box[0]) // 4
    draw.polygon([(tail, box[3] - 3), (tail + size, box[3] - 3), (tail + size // 3, box[3] + size)],
                 fill=(255, 255, 255), outline=(20, 20, 20))
    draw.text((box[0] + size, box[1] + size // 3), speaker, font=name_font, fill=(90, 90, 90))
    for n, line in enumerate(lines):
        draw.text((box[0] + size, box[1] + int(size * 1.4) + n * line_height), line, font=font, fill=(10, 10, 10))


def _read_manga(folder: Path) -> dict:
    try:
        return json.loads((folder / "manga.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _json(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line: draw the next sample chapter and print its folder."""
    parser = argparse.ArgumentParser(description="Draw the next chapter of the sample manga.")
    parser.add_argument("--samples", type=Path, default=Path("data/samples"), help="samples folder")
    parser.add_argument("--panels", type=int, default=DEFAULT_PANELS, help="panels in the chapter")
    args = parser.parse_args(argv)
    if args.panels < 1:
        parser.error("--panels must be at least 1")
    print(make_chapter(args.samples, panels=args.panels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
