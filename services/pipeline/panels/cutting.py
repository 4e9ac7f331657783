"""Cut a fetched chapter's pages into its panels, in reading order, in the video's workspace.

The fetch leaves the pages in ``work/<job_id>/panels/``. ``cut_chapter`` moves them to
``work/<job_id>/pages/`` (``page-001.png``, ...), writes each panel ``detect.panels_of``
finds as its own picture into ``panels/`` (``panel-001.png``, ... numbered across the
chapter in reading order; a JPEG page gives JPEG panels), and records the cut in
``panels.json``::

    {"direction": "rtl",
     "pages": [{"page": "page-001.png", "size": [1000, 1400],
                "panels": [{"file": "panel-001.png", "box": [x0, y0, x1, y1]}, ...]}, ...]}

so every later stage (the script writer, the voice, the render, the thumbnail) works on
panels exactly as it worked on pages. ``source.json`` gains ``pages`` and
``reading_direction``; its ``panels`` become the panel files, and a known line
(``lines``) keyed by a page goes to the page's first panel, one keyed ``page#n`` to its
n-th panel in reading order (dropped if the cut found fewer panels). A page that cannot
be read as an image is kept whole, as one panel, with a warning: the render then says
what is wrong with it.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from PIL import Image

from services.pipeline.panels.boxes import Box
from services.pipeline.panels.detect import panels_of
from services.pipeline.panels.order import ReadingDirection, direction_for
from services.pipeline.workspace import Workspace

__all__ = ["PANELS_FILE", "cut_chapter", "cut_pages", "panel_boxes"]

logger = logging.getLogger(__name__)

PANELS_FILE = "panels.json"


def cut_chapter(work: Workspace, source: dict[str, Any], setting: str = "auto") -> dict[str, Any]:
    """Cut the pages ``source`` lists into panels; return ``source`` updated (see the module).

    ``setting`` is READING_DIRECTION (``auto``, ``rtl``, ``ltr``); ``auto`` takes the
    chapter's declared direction, else its original language's.
    """
    direction = direction_for(
        source.get("original_language"),
        declared=source.get("reading_direction"),
        override=None if setting == "auto" else setting,
    )
    cut = cut_pages(work, list(source.get("panels") or []), direction)
    of_page = {fetched: page_panels for (fetched, _), page_panels in cut}
    moved_lines = {}
    for key, line in (source.get("lines") or {}).items():
        name, _, place = key.partition("#")
        page_panels = of_page.get(name, [])
        number = int(place) if place.isdigit() else 1
        if 1 <= number <= len(page_panels):
            moved_lines[page_panels[number - 1]] = line
    return {**source, "reading_direction": direction.value, "pages": [new for (_, new), _ in cut],
            "panels": [name for _, page_panels in cut for name in page_panels], "lines": moved_lines}


def cut_pages(
    work: Workspace, names: list[str], direction: ReadingDirection
) -> list[tuple[tuple[str, str], list[str]]]:
    """Move the pages ``names`` (in ``work.panels``) to ``work.root/pages`` and cut them.

    Returns, page by page, ``((name as fetched, name in pages/), [its panel files])``.
    A retried fetch refills ``panels/``; the pages of an earlier attempt are replaced.
    """
    pages_dir = work.root / "pages"
    if pages_dir.exists():
        shutil.rmtree(pages_dir)
    work.panels.rename(pages_dir)
    work.panels.mkdir()
    record: list[dict[str, Any]] = []
    out: list[tuple[tuple[str, str], list[str]]] = []
    count = 0
    for index, fetched in enumerate(names, start=1):
        suffix = (pages_dir / fetched).suffix.lower()
        page_name = f"page-{index:03d}{suffix}"
        page = pages_dir / page_name
        (pages_dir / fetched).rename(page)
        files: list[str] = []
        entries: list[dict[str, Any]] = []
        first = count
        try:
            boxes = panels_of(page, direction)
            with Image.open(page) as image:
                image.load()
                size = [image.width, image.height]
                for box in boxes:
                    count += 1
                    name = f"panel-{count:03d}{suffix}"
                    _save(image.crop((box.x0, box.y0, box.x1, box.y1)), work.panels / name, suffix)
                    files.append(name)
                    entries.append({"file": name, "box": box.to_list()})
        except (OSError, ValueError) as exc:
            logger.warning("page kept whole: it could not be cut into panels",
                           extra={"job_id": work.job_id, "stage": "FetchManga", "page": page_name, "error": str(exc)})
            for written in files:  # what this page had written before it failed
                (work.panels / written).unlink(missing_ok=True)
            count = first + 1
            name = f"panel-{count:03d}{suffix}"
            shutil.copyfile(page, work.panels / name)
            files, entries, size = [name], [{"file": name, "box": None}], None
        record.append({"page": page_name, "size": size, "panels": entries})
        out.append(((fetched, page_name), files))
    work.write(PANELS_FILE, {"direction": direction.value, "pages": record})
    logger.info("pages cut into panels", extra={"job_id": work.job_id, "stage": "FetchManga",
                                                 "pages": len(names), "panels": count, "direction": direction.value})
    return out


def panel_boxes(work: Workspace) -> dict[str, Box]:
    """Each panel file's box on its page, from ``panels.json`` (empty before the cut)."""
    try:
        record = work.read(PANELS_FILE)
    except FileNotFoundError:
        return {}
    return {entry["file"]: Box.from_list(entry["box"])
            for page in record.get("pages", []) for entry in page.get("panels", []) if entry.get("box")}


def _save(picture: Image.Image, path: Any, suffix: str) -> None:
    if suffix in (".jpg", ".jpeg"):
        picture.convert("RGB").save(path, quality=95)
    else:
        picture.save(path)
