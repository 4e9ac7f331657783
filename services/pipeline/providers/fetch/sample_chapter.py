"""Make a sample manga chapter: drawn panels with Vietnamese speech bubbles, no downloads.

The embedded fetch source reads chapters from a folder; this module fills that folder with
a chapter anyone may publish (it is drawn here). Each panel is a small PNG (800×1100):
sky and ground, two round-headed characters, and a speech bubble whose line of a short
Vietnamese story is set in Be Vietnam Pro (the font package covers Vietnamese). The
drawing is deterministic: the same chapter number always gives the same bytes.

Layout on disk (what ``LocalFolderSource`` reads)::

    <samples>/<manga_id>/manga.json                 {"manga_id", "title", "chapters": [...]}
    <samples>/<manga_id>/chapter-0001/panel-001.png ...
    <samples>/<manga_id>/chapter-0001/chapter.json  {"chapter", "title", "lines": [...]}

``manga.json`` records which chapters were made, so a chapter is never made twice.

Run: ``python -m services.pipeline.providers.fetch.sample_chapter [--samples DIR] [--panels N]``
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from services.pipeline.providers.fonts import font_path, wrap_text
from services.scheduler.atomic_file import write_atomic

__all__ = ["SAMPLE_MANGA_ID", "SAMPLE_TITLE", "STORY", "make_chapter", "next_chapter_number"]

SAMPLE_MANGA_ID = "cau-be-va-con-rong"
SAMPLE_TITLE = "Cậu bé và con rồng"
PANEL_SIZE = (800, 1100)
DEFAULT_PANELS = 12

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
    for index in range(panels):
        speaker, text = STORY[(index + (number - 1) * 3) % len(STORY)]
        image = _draw_panel(number, index, speaker, text)
        path = folder / f"panel-{index + 1:03d}.png"
        image.save(path, format="PNG", optimize=True)
        lines.append({"panel": path.name, "speaker": speaker, "text": text})
    title = f"{SAMPLE_TITLE} - Chương {number}"
    chapter = {"chapter": number, "title": title, "lines": lines}
    write_atomic(folder / "chapter.json", _json(chapter))
    manga = _read_manga(samples / manga_id)
    manga.update(manga_id=manga_id, title=SAMPLE_TITLE)
    manga.setdefault("chapters", []).append({"chapter": number, "folder": folder.name, "panels": panels})
    write_atomic(samples / manga_id / "manga.json", _json(manga))
    return folder


def _draw_panel(chapter: int, index: int, speaker: str, text: str) -> Image.Image:
    rng = random.Random(chapter * 1000 + index)
    width, height = PANEL_SIZE
    image = Image.new("RGB", PANEL_SIZE, _SKIES[(chapter + index) % len(_SKIES)])
    draw = ImageDraw.Draw(image)
    ground = int(height * 0.72)
    draw.rectangle((0, ground, width, height), fill=(110, 170, 90))
    for _ in range(3):  # hills
        x = rng.randint(-100, width)
        draw.ellipse((x, ground - 180, x + 420, ground + 180), fill=(90, 150, 80))
    draw.ellipse((width - 170, 40, width - 70, 140), fill=(255, 220, 90))  # sun
    for offset, who in ((0.3, speaker), (0.7, "Lan" if speaker != "Lan" else "Minh")):
        _draw_character(draw, int(width * offset), ground, _COLOURS.get(who, (120, 120, 120)), rng)
    _draw_bubble(draw, text, speaker)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(20, 20, 20), width=8)
    return image


def _draw_character(
    draw: ImageDraw.ImageDraw, x: int, ground: int, colour: tuple[int, int, int], rng: random.Random
) -> None:
    top = ground - 260 - rng.randint(0, 40)
    draw.rectangle((x - 45, top + 110, x + 45, ground), fill=colour, outline=(20, 20, 20), width=4)
    draw.ellipse((x - 60, top, x + 60, top + 120), fill=(255, 224, 189), outline=(20, 20, 20), width=4)
    draw.ellipse((x - 28, top + 45, x - 12, top + 61), fill=(20, 20, 20))
    draw.ellipse((x + 12, top + 45, x + 28, top + 61), fill=(20, 20, 20))
    draw.arc((x - 25, top + 60, x + 25, top + 95), start=20, end=160, fill=(20, 20, 20), width=4)


def _draw_bubble(draw: ImageDraw.ImageDraw, text: str, speaker: str) -> None:
    font = ImageFont.truetype(str(font_path("Bold")), 38)
    name_font = ImageFont.truetype(str(font_path("Regular")), 30)
    width = PANEL_SIZE[0]
    lines = wrap_text(draw, text, font, width - 160)
    line_height = 50
    box = (50, 60, width - 50, 60 + 70 + line_height * len(lines))
    draw.rounded_rectangle(box, radius=40, fill=(255, 255, 255), outline=(20, 20, 20), width=5)
    draw.polygon(
        [(200, box[3] - 3), (260, box[3] - 3), (215, box[3] + 60)], fill=(255, 255, 255), outline=(20, 20, 20)
    )
    draw.text((box[0] + 40, box[1] + 14), speaker, font=name_font, fill=(90, 90, 90))
    for n, line in enumerate(lines):
        draw.text((box[0] + 40, box[1] + 54 + n * line_height), line, font=font, fill=(10, 10, 10))


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
