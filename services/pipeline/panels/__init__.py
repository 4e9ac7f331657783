"""Panels: where each panel of a manga page is, and in which order it is read.

``detect.find_panels`` splits a page at its gutters (and a webtoon strip at its blank
bands), ``order`` decides the reading direction from the source's metadata, and
``boxes.Box`` is the rectangle both speak in. Pure image analysis with OpenCV and numpy:
no model, no download.
"""

from services.pipeline.panels.boxes import Box, iou
from services.pipeline.panels.detect import find_panels, is_strip, panels_of, split_strip
from services.pipeline.panels.order import ReadingDirection, direction_for

__all__ = [
    "Box",
    "ReadingDirection",
    "direction_for",
    "find_panels",
    "iou",
    "is_strip",
    "panels_of",
    "split_strip",
]
