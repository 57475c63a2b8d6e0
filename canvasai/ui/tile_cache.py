"""Per-tile QImage caches for the canvas, refreshed only where the document changed.

The canvas never composites the whole view per event: a document event marks
the touched part of each cached tile dirty, and the next paint recomputes just
that part (several pointer events between two frames coalesce into one
refresh). Missing tiles are built under a time budget per paint so a huge
document never freezes the GUI thread; the rest arrive on the next frames.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
from PySide6.QtGui import QImage

from canvasai.core.geometry import Rect

DISPLAY_TILE = 256
DEFAULT_BUDGET = 512 * 1024 * 1024  # bytes of cached display pixels

# render(rect) -> (h, w, 4) uint8 premultiplied RGBA, or None where there is nothing to show
Renderer = Callable[[Rect], "np.ndarray | None"]


def image_with_array(w: int, h: int, fmt: QImage.Format) -> tuple[QImage, np.ndarray]:
    """A QImage that owns its pixels and a (h, w, 4) numpy view writing straight into them.

    Partial refreshes write through the view. The QImage owns the memory, so
    nothing depends on a numpy buffer outliving an image that wraps it.
    """
    image = QImage(w, h, fmt)
    stride = image.bytesPerLine()
    view = np.frombuffer(image.bits(), np.uint8).reshape(h, stride // 4, 4)[:, :w]
    return image, view


class _Tile:
    __slots__ = ("rect", "pixels", "image", "dirty")

    def __init__(self, rect: Rect, pixels: np.ndarray | None) -> None:
        self.rect = rect
        self.dirty: Rect | None = None
        self.pixels: np.ndarray | None = None
        self.image: QImage | None = None
        self.set_pixels(pixels)

    def set_pixels(self, pixels: np.ndarray | None) -> None:
        if pixels is None:
            self.pixels = self.image = None
            return
        h, w = pixels.shape[:2]
        self.image, self.pixels = image_with_array(w, h, QImage.Format.Format_RGBA8888_Premultiplied)
        self.pixels[:] = pixels

    @property
    def nbytes(self) -> int:
        return self.pixels.nbytes if self.pixels is not None else 0


class TileImageCache:
    """QImages of `DISPLAY_TILE`-sized tiles of a document-sized plane."""

    def __init__(self, render: Renderer, bounds: Rect, tile_size: int = DISPLAY_TILE,
                 budget: int = DEFAULT_BUDGET) -> None:
        self._render = render
        self.bounds = bounds
        self.tile_size = tile_size
        self.budget = budget
        self._tiles: OrderedDict[tuple[int, int], _Tile] = OrderedDict()
        self._nbytes = 0

    # -- invalidation --------------------------------------------------------------
    def clear(self, bounds: Rect | None = None) -> None:
        self._tiles.clear()
        self._nbytes = 0
        if bounds is not None:
            self.bounds = bounds

    def invalidate(self, rect: Rect) -> None:
        """Mark the part of each cached tile inside `rect` for recomputation."""
        rect = rect.intersect(self.bounds)
        for key in rect.tiles(self.tile_size):
            tile = self._tiles.get(key)
            if tile is not None:
                part = tile.rect.intersect(rect)
                tile.dirty = part if tile.dirty is None else tile.dirty.union(part)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._tiles)

    # -- access --------------------------------------------------------------------
    def tile_rect(self, key: tuple[int, int]) -> Rect:
        t = self.tile_size
        return Rect(key[0] * t, key[1] * t, t, t).intersect(self.bounds)

    def tiles(self, rect: Rect, build_seconds: float | None = None
              ) -> Iterator[tuple[Rect, QImage | None, bool]]:
        """(tile rect, image or None, ready) for every tile overlapping `rect`.

        Dirty parts of cached tiles are always refreshed (they are what the
        person is painting). Missing tiles are built until `build_seconds` have
        passed; after that they come back with ready=False for a later frame.
        """
        rect = rect.intersect(self.bounds)
        deadline = None if build_seconds is None else time.perf_counter() + build_seconds
        built = 0
        for key in rect.tiles(self.tile_size):
            tile = self._tiles.get(key)
            if tile is None:
                # at least one tile per call, so every frame makes progress
                if deadline is not None and built and time.perf_counter() > deadline:
                    yield self.tile_rect(key), None, False
                    continue
                tile = self._build(key)
                built += 1
            elif tile.dirty is not None:
                self._refresh(tile)
            self._tiles.move_to_end(key)
            yield tile.rect, tile.image, True

    def _build(self, key: tuple[int, int]) -> _Tile:
        r = self.tile_rect(key)
        tile = _Tile(r, self._render(r))
        self._tiles[key] = tile
        self._nbytes += tile.nbytes
        self._trim()
        return tile

    def _refresh(self, tile: _Tile) -> None:
        part, tile.dirty = tile.dirty, None
        assert part is not None
        pixels = self._render(part)
        if tile.pixels is None:
            if pixels is None:
                return
            # A tile that showed nothing now shows something: build it whole.
            self._nbytes -= tile.nbytes
            tile.set_pixels(self._render(tile.rect))
            self._nbytes += tile.nbytes
            self._trim()
            return
        ys = slice(part.y - tile.rect.y, part.y1 - tile.rect.y)
        xs = slice(part.x - tile.rect.x, part.x1 - tile.rect.x)
        tile.pixels[ys, xs] = 0 if pixels is None else pixels

    def _trim(self) -> None:
        while self._nbytes > self.budget and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._nbytes -= old.nbytes
