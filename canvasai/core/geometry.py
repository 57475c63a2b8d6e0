"""Integer rectangles in document pixel coordinates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rect:
    """A half-open integer rectangle: covers x <= px < x + w, y <= py < y + h."""

    x: int
    y: int
    w: int
    h: int

    @staticmethod
    def from_bounds(x0: int, y0: int, x1: int, y1: int) -> Rect:
        return Rect(int(x0), int(y0), max(0, int(x1) - int(x0)), max(0, int(y1) - int(y0)))

    @property
    def x1(self) -> int:
        return self.x + self.w

    @property
    def y1(self) -> int:
        return self.y + self.h

    @property
    def size(self) -> tuple[int, int]:
        return (self.w, self.h)

    def is_empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def intersect(self, other: Rect) -> Rect:
        return Rect.from_bounds(
            max(self.x, other.x), max(self.y, other.y), min(self.x1, other.x1), min(self.y1, other.y1)
        )

    def union(self, other: Rect) -> Rect:
        if self.is_empty():
            return other
        if other.is_empty():
            return self
        return Rect.from_bounds(
            min(self.x, other.x), min(self.y, other.y), max(self.x1, other.x1), max(self.y1, other.y1)
        )

    def translated(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def adjusted(self, left: int, top: int, right: int, bottom: int) -> Rect:
        """Grow (positive) or shrink (negative) each side."""
        return Rect.from_bounds(self.x - left, self.y - top, self.x1 + right, self.y1 + bottom)

    def contains_point(self, px: float, py: float) -> bool:
        return self.x <= px < self.x1 and self.y <= py < self.y1

    def contains(self, other: Rect) -> bool:
        return (
            other.x >= self.x and other.y >= self.y and other.x1 <= self.x1 and other.y1 <= self.y1
        )

    def slices(self) -> tuple[slice, slice]:
        """numpy (rows, cols) slices for this rect inside an array whose origin is (0, 0)."""
        return slice(self.y, self.y1), slice(self.x, self.x1)

    def tiles(self, tile_size: int) -> Iterator[tuple[int, int]]:
        """Indices (tx, ty) of the tiles this rect overlaps."""
        if self.is_empty():
            return
        t = tile_size
        for ty in range(self.y // t, (self.y1 - 1) // t + 1):
            for tx in range(self.x // t, (self.x1 - 1) // t + 1):
                yield tx, ty

    def snapped_out(self, multiple: int) -> Rect:
        """The smallest rect containing this one whose edges are multiples of `multiple`."""
        m = multiple
        return Rect.from_bounds(
            (self.x // m) * m, (self.y // m) * m, -(-self.x1 // m) * m, -(-self.y1 // m) * m
        )


EMPTY = Rect(0, 0, 0, 0)
