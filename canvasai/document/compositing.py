"""Compositing the layer stack, only where something changed.

`Compositor` keeps two per-tile caches around the active layer, the way painting
apps keep a projection: the composite of every layer *below* it, and the
premultiplied group of every layer *above* it (only when all of those are
source-over, which is associative). A dab on the active layer then costs three
blends per pixel whatever the number of layers. The caches are filled lazily per
tile, bounded by a byte budget (LRU), and invalidated per tile by the document's
pixel events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.blend import BlendMode, composite_layer, to_display, to_straight_uint8
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.document.tiles import TileKey

DEFAULT_CACHE_BUDGET = 384 * 1024 * 1024


def _layer_is_blank_at(layer: Layer, key: TileKey) -> bool:
    return not layer.surface.has_tile(key) and layer.surface.fill[3] == 0


def composite_layers(layers: Sequence[Layer], rect: Rect, respect_visibility: bool = True,
                     bottom_as_normal: bool = False, strip: int = 256) -> np.ndarray:
    """Composite `layers` (bottom to top) over transparency into straight uint8 RGBA.

    Works in horizontal strips so memory stays bounded for huge documents, and
    skips the parts of a layer that have no tiles.
    """
    out = np.empty((rect.h, rect.w, 4), np.uint8)
    for sy in range(rect.y, rect.y1, strip):
        band = Rect.from_bounds(rect.x, sy, rect.x1, min(rect.y1, sy + strip))
        acc = np.zeros((band.h, band.w, 4), np.float32)
        for i, layer in enumerate(layers):
            if respect_visibility and not layer.visible:
                continue
            mode = BlendMode.NORMAL if (bottom_as_normal and i == 0) else layer.blend_mode
            surf = layer.surface
            if surf.fill[3] == 0:
                keys = [k for k in band.tiles(surf.tile_size) if surf.has_tile(k)]
                if not keys:
                    continue
                x0 = min(k[0] for k in keys) * surf.tile_size
                x1 = (max(k[0] for k in keys) + 1) * surf.tile_size
                part = band.intersect(Rect.from_bounds(x0, band.y, x1, band.y1))
            else:
                part = band
            sub = acc[part.y - band.y:part.y1 - band.y, part.x - band.x:part.x1 - band.x]
            composite_layer(sub, surf.read(part), layer.opacity, mode)
        out[band.y - rect.y:band.y1 - rect.y] = to_straight_uint8(acc)
    return out


class _TileCache:
    def __init__(self) -> None:
        self.tiles: OrderedDict[TileKey, np.ndarray] = OrderedDict()
        self.nbytes = 0

    def get(self, key: TileKey) -> np.ndarray | None:
        t = self.tiles.get(key)
        if t is not None:
            self.tiles.move_to_end(key)
        return t

    def put(self, key: TileKey, tile: np.ndarray, budget: int) -> None:
        self.drop(key)
        self.tiles[key] = tile
        self.nbytes += tile.nbytes
        while self.nbytes > budget and len(self.tiles) > 1:
            _, old = self.tiles.popitem(last=False)
            self.nbytes -= old.nbytes

    def drop(self, key: TileKey) -> None:
        t = self.tiles.pop(key, None)
        if t is not None:
            self.nbytes -= t.nbytes

    def clear(self) -> None:
        self.tiles.clear()
        self.nbytes = 0


class Compositor:
    """Composites a document's visible layers for display, with projection caches."""

    def __init__(self, doc: Document, cache_budget: int = DEFAULT_CACHE_BUDGET) -> None:
        self.doc = doc
        self.cache_budget = cache_budget
        self._below = _TileCache()
        self._above = _TileCache()
        # Stack and visual-property changes also emit pixels_changed(None, ...), which
        # drops the caches; a rename or lock (layers_changed alone) keeps them.
        doc.pixels_changed.connect(self._on_pixels)
        doc.active_changed.connect(lambda _layer: self.invalidate())
        doc.size_changed.connect(self.invalidate)

    # -- cache maintenance ------------------------------------------------------------
    def invalidate(self) -> None:
        self._below.clear()
        self._above.clear()

    def _on_pixels(self, layer: Layer | None, rect: Rect) -> None:
        if layer is None:
            self.invalidate()
            return
        try:
            idx = self.doc.index_of(layer)
        except ValueError:
            return
        a = self.doc.active_index
        if idx == a:
            return
        cache = self._below if idx < a else self._above
        for key in rect.tiles(self.doc.mask.tile_size):
            cache.drop(key)

    @property
    def cache_nbytes(self) -> int:
        return self._below.nbytes + self._above.nbytes

    def _above_is_groupable(self) -> bool:
        return all(
            layer.blend_mode is BlendMode.NORMAL
            for layer in self.doc.layers[self.doc.active_index + 1:]
            if layer.visible
        )

    def _stack_tile(self, layers: Sequence[Layer], key: TileKey, ts: int) -> np.ndarray:
        acc = np.zeros((ts, ts, 4), np.float32)
        for layer in layers:
            if layer.visible and not _layer_is_blank_at(layer, key):
                composite_layer(acc, layer.surface.tile_or_fill(key), layer.opacity, layer.blend_mode)
        return acc

    def _below_tile(self, key: TileKey, ts: int) -> np.ndarray:
        t = self._below.get(key)
        if t is None:
            t = self._stack_tile(self.doc.layers[: self.doc.active_index], key, ts)
            self._below.put(key, t, self.cache_budget // 2)
        return t

    def _above_tile(self, key: TileKey, ts: int) -> np.ndarray:
        t = self._above.get(key)
        if t is None:
            t = self._stack_tile(self.doc.layers[self.doc.active_index + 1:], key, ts)
            self._above.put(key, t, self.cache_budget // 2)
        return t

    # -- compositing --------------------------------------------------------------------
    def composite(self, rect: Rect) -> np.ndarray:
        """Premultiplied float32 RGBA of the visible stack inside `rect` (clamped to the doc).

        Gathers the below-projection for the rect, blends the active layer once, then
        the above group (or each layer above when they don't group).
        """
        rect = rect.intersect(self.doc.rect)
        out = np.empty((rect.h, rect.w, 4), np.float32)
        if rect.is_empty():
            return out
        doc = self.doc
        ts = doc.mask.tile_size
        a = doc.active_index
        active = doc.layers[a] if 0 <= a < len(doc.layers) else None
        above_layers = [la for la in doc.layers[a + 1:] if la.visible]
        groupable = self._above_is_groupable()
        parts = []
        for key in rect.tiles(ts):
            tr = Rect(key[0] * ts, key[1] * ts, ts, ts)
            part = tr.intersect(rect)
            ys, xs = slice(part.y - tr.y, part.y1 - tr.y), slice(part.x - tr.x, part.x1 - tr.x)
            oys = slice(part.y - rect.y, part.y1 - rect.y)
            oxs = slice(part.x - rect.x, part.x1 - rect.x)
            out[oys, oxs] = self._below_tile(key, ts)[ys, xs]
            parts.append((key, ys, xs, oys, oxs))
        if active is not None and active.visible and any(
            not _layer_is_blank_at(active, p[0]) for p in parts
        ):
            composite_layer(out, active.surface.read(rect), active.opacity, active.blend_mode)
        if not above_layers:
            return out
        if groupable:
            above = np.empty_like(out)
            for key, ys, xs, oys, oxs in parts:
                above[oys, oxs] = self._above_tile(key, ts)[ys, xs]
            if above[..., 3].any():
                out *= 1.0 - above[..., 3:4]
                out += above
        else:
            for layer in above_layers:
                if any(not _layer_is_blank_at(layer, p[0]) for p in parts):
                    composite_layer(out, layer.surface.read(rect), layer.opacity,
                                    layer.blend_mode)
        return out

    def display(self, rect: Rect) -> np.ndarray:
        """Premultiplied uint8 RGBA, ready for a QImage (Format_RGBA8888_Premultiplied)."""
        return to_display(self.composite(rect))

    def flatten(self, rect: Rect | None = None) -> np.ndarray:
        """Straight uint8 RGBA of the whole image (or `rect`), without touching the caches."""
        return composite_layers(self.doc.layers, rect or self.doc.rect)

    def pick_color(self, x: int, y: int) -> tuple[int, int, int, int]:
        px = to_straight_uint8(self.composite(Rect(int(x), int(y), 1, 1)))
        return tuple(int(c) for c in px[0, 0])  # type: ignore[return-value]
