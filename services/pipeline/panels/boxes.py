"""Box: a panel's rectangle on its page, in pixels, and the overlap measure the tests use."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Box", "iou"]


@dataclass(frozen=True, order=True)
class Box:
    """``[x0, x1) × [y0, y1)`` in the page's pixels (x to the right, y down)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"empty box {self}")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def contains(self, other: Box) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1

    def to_list(self) -> list[int]:
        """``[x0, y0, x1, y1]``, as a render plan stores it."""
        return [self.x0, self.y0, self.x1, self.y1]

    @classmethod
    def from_list(cls, values: list[int]) -> Box:
        x0, y0, x1, y1 = (int(v) for v in values)
        return cls(x0, y0, x1, y1)


def iou(a: Box, b: Box) -> float:
    """Intersection over union: 1.0 for the same box, 0.0 for boxes that do not overlap."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.area + b.area - inter)
