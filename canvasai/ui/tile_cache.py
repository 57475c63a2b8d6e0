"""Per-tile QImage caches for the canvas, refreshed only where the document changed.

The canvas never composites the whole view per event: a document event marks
the touched part of each cached tile dirty, and the next paint recomputes just
that part (several pointer events between two frames coalesce into one
refresh). Missing tiles are built under a time budget per paint (a `FrameBudget`,
which every cache a paint draws from shares) so a huge document never freezes the
GUI thread; the rest arrive on the next frames.

A cache holds one resolution level: at level L a tile's QImage is `tile_size`
pixels wide and shows `tile_size * 2**L` document pixels (the canvas keeps one
cache per level it has shown, like a mipmap pyramid). A tile whose renderer
works in steps (`steps`, a generator per tile) is built over several frames,
so even an expensive tile never holds the GUI thread much longer than the budget:
a step that would likely run past the deadline (judged by the cache's recent steps)
waits for the next frame.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator

import numpy as np
from PySide6.QtGui import QImage

from canvasai.core.geometry import Rect

DISPLAY_TILE = 256
DEFAULT_BUDGET = 512 * 1024 * 1024  # bytes of cached display pixels

# render(rect) -> (ceil(h / 2**L), ceil(w / 2**L), 4) uint8 premultiplied RGBA, or None
# where there is nothing to show
Renderer = Callable[[Rect], "np.ndarray | None"]
StepRenderer = Callable[[Rect], Generator[None, None, "np.ndarray | None"]]


def image_with_array(w: int, h: int, fmt: QImage.Format) -> tuple[QImage, np.ndarray]:
    """A QImage that owns its pixels and a (h, w, 4) numpy view writing straight into them.

    Partial refreshes write through the view. The QImage owns the memory, so
    nothing depends on a numpy buffer outliving an image that wraps it.
    """
    image = QImage(w, h, fmt)
    stride = image.bytesPerLine()
    view = np.frombuffer(image.bits(), np.uint8).reshape(h, stride // 4, 4)[:, :w]
    return image, view


class FrameBudget:
    """The time one frame may spend building tiles, shared by every cache it draws from.

    At least one tile (or one step of one) is built per budget whatever the time, so
    every picture finishes; after that, building stops at the deadline.
    """

    __slots__ = ("deadline", "worked")

    def __init__(self, seconds: float, progress: bool = True) -> None:
        self.deadline = time.perf_counter() + seconds
        # something was built under this budget; without `progress`, nothing is
        # built past the deadline even if nothing was built before it
        self.worked = not progress

    def left(self) -> float:
        """Seconds until the deadline (negative past it)."""
        return self.deadline - time.perf_counter()

    def allows(self, seconds: float = 0.0) -> bool:
        """Whether work expected to take `seconds` may start now."""
        return not self.worked or self.left() > seconds


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
    """QImages of `DISPLAY_TILE`-sized tiles of a document-sized plane, at one level."""

    def __init__(self, render: Renderer, bounds: Rect, tile_size: int = DISPLAY_TILE,
                 budget: int = DEFAULT_BUDGET, level: int = 0,
                 steps: StepRenderer | None = None) -> None:
        self._render = render
        self._steps = steps
        self.bounds = bounds
        self.tile_size = tile_size
        self.level = level
        self.span = tile_size << level  # document pixels per tile side
        self.budget = budget
        self._tiles: OrderedDict[tuple[int, int], _Tile] = OrderedDict()
        self._nbytes = 0
        self._pending: tuple[tuple[int, int], Generator] | None = None
        self._step_seconds = 0.0  # how long this cache's recent build steps took (a decaying max)

    # -- invalidation --------------------------------------------------------------
    def clear(self, bounds: Rect | None = None) -> None:
        self._tiles.clear()
        self._nbytes = 0
        self._pending = None
        if bounds is not None:
            self.bounds = bounds

    def invalidate(self, rect: Rect) -> None:
        """Mark the part of each cached tile inside `rect` for recomputation."""
        rect = rect.intersect(self.bounds)
        if rect.is_empty():
            return
        pending = self._pending
        if pending is not None and not self.tile_rect(pending[0]).intersect(rect).is_empty():
            self._pending = None  # restart that tile from the new pixels
        for key in rect.tiles(self.span):
            tile = self._tiles.get(key)
            if tile is not None:
                part = tile.rect.intersect(rect)
                tile.dirty = part if tile.dirty is None else tile.dirty.union(part)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def building(self) -> bool:
        """A tile is part-way built (its next steps wait for the next frame)."""
        return self._pending is not None

    # -- access --------------------------------------------------------------------
    def tile_rect(self, key: tuple[int, int]) -> Rect:
        t = self.span
        return Rect(key[0] * t, key[1] * t, t, t).intersect(self.bounds)

    def missing(self, rect: Rect) -> list[Rect]:
        """The parts of `rect` whose tiles are not built yet (document pixels)."""
        rect = rect.intersect(self.bounds)
        return [self.tile_rect(key).intersect(rect) for key in rect.tiles(self.span)
                if key not in self._tiles]

    def build(self, rect: Rect, budget: FrameBudget) -> tuple[list[Rect], bool]:
        """Build missing tiles overlapping `rect` while `budget` allows, without drawing
        them: the rects of the tiles built, and whether none is missing any more."""
        rect = rect.intersect(self.bounds)
        built: list[Rect] = []
        done = building = True
        for key in rect.tiles(self.span):
            if key in self._tiles:
                continue
            tile = self._build(key, budget) if building and budget.allows() else None
            if tile is None:
                done = building = False  # (the next tile would drop this one's steps)
            else:
                built.append(tile.rect)
        return built, done

    def tiles(self, rect: Rect, budget: FrameBudget | float | None = None
              ) -> Iterator[tuple[Rect, QImage | None, bool]]:
        """(tile rect in document pixels, image or None, ready) for every tile overlapping `rect`.

        Dirty parts of cached tiles are always refreshed (they are what the
        person is painting). Missing tiles are built while `budget` (a shared
        `FrameBudget`, or seconds for this call alone; None: no limit) allows;
        after that they come back with ready=False for a later frame.
        """
        rect = rect.intersect(self.bounds)
        self._refresh_together(rect)
        if budget is not None and not isinstance(budget, FrameBudget):
            budget = FrameBudget(budget)
        building = True
        for key in rect.tiles(self.span):
            tile = self._tiles.get(key)
            if tile is None:
                if not building or (budget is not None and not budget.allows()):
                    yield self.tile_rect(key), None, False
                    continue
                tile = self._build(key, budget)
                if tile is None:
                    building = False  # (the next tile would drop this one's steps)
                    yield self.tile_rect(key), None, False
                    continue
            elif tile.dirty is not None:
                self._refresh(tile)
            self._tiles.move_to_end(key)
            yield tile.rect, tile.image, True

    def _refresh_together(self, rect: Rect) -> None:
        """Refresh the dirty parts of several tiles with one render of their bounding rect
        (a dab across a tile border is composited once, not once per tile), unless that
        rect is much larger than the parts."""
        dirty = [t for key in rect.tiles(self.span)
                 if (t := self._tiles.get(key)) is not None and t.dirty is not None
                 and t.pixels is not None]
        if len(dirty) < 2:
            return
        parts = [self._aligned(t.dirty).intersect(t.rect) for t in dirty]  # type: ignore[arg-type]
        union = parts[0]
        for part in parts[1:]:
            union = union.union(part)
        if union.w * union.h > 1.5 * sum(p.w * p.h for p in parts):
            return
        pixels = self._render(union)
        lv = self.level
        for tile, part in zip(dirty, parts, strict=True):
            tile.dirty = None
            assert tile.pixels is not None
            y0, x0 = (part.y - tile.rect.y) >> lv, (part.x - tile.rect.x) >> lv
            h, w = -(-part.h >> lv), -(-part.w >> lv)
            if pixels is None:
                tile.pixels[y0:y0 + h, x0:x0 + w] = 0
            else:
                uy, ux = (part.y - union.y) >> lv, (part.x - union.x) >> lv
                tile.pixels[y0:y0 + h, x0:x0 + w] = pixels[uy:uy + h, ux:ux + w]

    def _build(self, key: tuple[int, int], budget: FrameBudget | None) -> _Tile | None:
        r = self.tile_rect(key)
        if self._steps is None:
            pixels = self._render(r)
            if budget is not None:
                budget.worked = True
        else:
            # a step that would likely end past the deadline waits for the next frame
            # (unless nothing was built in this frame yet: every frame makes progress)
            if budget is not None and not budget.allows(self._step_seconds):
                return None
            if self._pending is None or self._pending[0] != key:
                self._pending = (key, self._steps(r))
            gen = self._pending[1]
            while True:
                t0 = time.perf_counter()
                try:
                    next(gen)
                except StopIteration as done:
                    pixels = done.value
                    self._pending = None
                    break
                finally:
                    self._note_step(time.perf_counter() - t0)
                    if budget is not None:
                        budget.worked = True
                if budget is not None and not budget.allows(self._step_seconds):
                    return None
        tile = _Tile(r, pixels)
        self._tiles[key] = tile
        self._nbytes += tile.nbytes
        self._trim()
        return tile

    def _note_step(self, seconds: float) -> None:
        """Remember how long build steps take here: the longest lately, slowly forgotten
        (steps of one tile differ: the first layer, the last one with the finishing)."""
        self._step_seconds = max(seconds, self._step_seconds * 0.75)

    def _aligned(self, part: Rect) -> Rect:
        """`part` grown to whole pixels of this level (never beyond the tile or bounds)."""
        s = 1 << self.level
        if s == 1:
            return part
        x0, y0 = part.x // s * s, part.y // s * s
        x1, y1 = -(-part.x1 // s) * s, -(-part.y1 // s) * s
        return Rect.from_bounds(x0, y0, x1, y1).intersect(self.bounds)

    def _refresh(self, tile: _Tile) -> None:
        part, tile.dirty = tile.dirty, None
        assert part is not None
        part = self._aligned(part).intersect(tile.rect)
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
        lv = self.level
        y0, x0 = (part.y - tile.rect.y) >> lv, (part.x - tile.rect.x) >> lv
        if pixels is None:
            h, w = -(-part.h >> lv), -(-part.w >> lv)
            tile.pixels[y0:y0 + h, x0:x0 + w] = 0
        else:
            h, w = pixels.shape[:2]
            tile.pixels[y0:y0 + h, x0:x0 + w] = pixels

    def _trim(self) -> None:
        while self._nbytes > self.budget and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._nbytes -= old.nbytes
