"""Compositing the layer stack, only where something changed.

`Compositor` keeps per-tile caches around the active layer, the way painting
apps keep a projection: the composite of every layer *below* it, and, above it,
one cached affine map per run of layers whose blend mode is affine in the
backdrop (normal, multiply, screen, hard light, exclusion; see
`blend.Transfer`). Layers above in a non-affine mode (overlay, soft light,
darken, ...) are blended one by one. A dab on the active layer then costs one
blend for the active layer, one multiply-add per affine run and one blend per
non-affine layer above, whatever the number of layers. The caches are filled
lazily per tile, bounded by a byte budget (one LRU), and invalidated per tile by
the document's pixel events.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Generator, Sequence

import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.blend import (
    AFFINE_MODES,
    BlendMode,
    Transfer,
    composite_layer,
    to_display,
    to_straight_uint8,
)
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.document.tiles import TileKey

# Bytes of cached projection (below) and affine maps (above); the dab path needs the
# tiles around the stroke, the first view of a 1920x1080 viewport fills ~100-250 MiB.
DEFAULT_CACHE_BUDGET = 640 * 1024 * 1024


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


SAMPLE_ROWS_PER_STEP = 128  # rows of samples composited per step of `sampled_steps`


def sampled_steps(layers: Sequence[Layer], rect: Rect, step: int
                  ) -> Generator[None, None, np.ndarray]:
    """Premultiplied float32 of the visible `layers` (bottom to top) at every `step`-th
    pixel of `rect` (see `TiledSurface.sample`), yielding after each band of
    `SAMPLE_ROWS_PER_STEP` sample rows of each layer so a caller can spread the work over
    several frames (one layer over a whole 4096² tile at once held the GUI thread
    10-40 ms, at times over 100); the pixels in between are never read."""
    acc = np.zeros((-(-rect.h // step), -(-rect.w // step), 4), np.float32)
    if rect.is_empty():
        return acc
    for layer in layers:
        if not layer.visible:
            continue
        band_h = SAMPLE_ROWS_PER_STEP * step
        ts = layer.surface.tile_size
        if ts % step == 0:  # whole tiles per band keep `sample`'s one-slice-per-tile path
            band_h = math.lcm(band_h, ts)
        for y in range(rect.y, rect.y1, band_h):
            band = Rect.from_bounds(rect.x, y, rect.x1, min(rect.y1, y + band_h))
            px = layer.surface.sample(band, step)
            if px is not None:
                row = (y - rect.y) // step
                composite_layer(acc[row:row + px.shape[0]], px, layer.opacity,
                                layer.blend_mode)
                yield None
    return acc


def composite_sampled(layers: Sequence[Layer], rect: Rect, step: int) -> np.ndarray:
    """`sampled_steps` run to the end."""
    return _run_steps(sampled_steps(layers, rect, step))


def _run_steps(steps: Generator[None, None, np.ndarray]) -> np.ndarray:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


class _TileCache:
    """LRU of per-tile values (arrays, transfers, or None for 'nothing there')."""

    def __init__(self) -> None:
        self.tiles: OrderedDict[tuple[int, TileKey], tuple[object, int]] = OrderedDict()
        self.nbytes = 0

    def get(self, key: tuple[int, TileKey]) -> tuple[object, int] | None:
        t = self.tiles.get(key)
        if t is not None:
            self.tiles.move_to_end(key)
        return t

    def put(self, key: tuple[int, TileKey], value: object, nbytes: int, budget: int) -> None:
        self.drop(key)
        self.tiles[key] = (value, nbytes)
        self.nbytes += nbytes
        while self.nbytes > budget and len(self.tiles) > 1:
            _, (_, old) = self.tiles.popitem(last=False)
            self.nbytes -= old

    def drop(self, key: tuple[int, TileKey]) -> None:
        t = self.tiles.pop(key, None)
        if t is not None:
            self.nbytes -= t[1]

    def clear(self) -> None:
        self.tiles.clear()
        self.nbytes = 0


_BELOW = -1  # cache slot of the below-projection; slots 0.. are the runs above


class _Run:
    """Layers above the active one: a run of affine-mode layers, or one other layer."""

    __slots__ = ("layers", "affine")

    def __init__(self, layers: list[Layer], affine: bool) -> None:
        self.layers = layers
        self.affine = affine


def _runs(layers: Sequence[Layer]) -> list[_Run]:
    runs: list[_Run] = []
    for layer in layers:
        if not layer.visible:
            continue
        affine = layer.blend_mode in AFFINE_MODES
        if affine and runs and runs[-1].affine:
            runs[-1].layers.append(layer)
        else:
            runs.append(_Run([layer], affine))
    return runs


class Compositor:
    """Composites a document's visible layers for display, with projection caches."""

    def __init__(self, doc: Document, cache_budget: int = DEFAULT_CACHE_BUDGET) -> None:
        self.doc = doc
        self.cache_budget = cache_budget
        self._cache = _TileCache()
        self._runs: list[_Run] = []
        self._run_of: dict[int, int] = {}  # layer id -> run index
        self._signature: tuple = ()
        # Stack and visual-property changes also emit pixels_changed(None, ...), which
        # drops the caches; a rename or lock (layers_changed alone) keeps them.
        doc.pixels_changed.connect(self._on_pixels)
        doc.active_changed.connect(lambda _layer: self.invalidate())
        doc.size_changed.connect(self.invalidate)

    # -- cache maintenance ------------------------------------------------------------
    def invalidate(self) -> None:
        self._cache.clear()
        self._signature = ()

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
        if idx < a:
            slot = _BELOW
        else:
            slot = self._run_of.get(layer.id)
            if slot is None:
                return  # hidden, or the stack changed since (the signature catches that)
        for key in rect.tiles(self.doc.mask.tile_size):
            self._cache.drop((slot, key))

    @property
    def opaque(self) -> bool:
        """Every pixel of the composite is opaque: some visible layer at full opacity has
        an opaque fill (no blend mode lowers alpha: ao = as + ab - as ab)."""
        return any(la.visible and la.opacity >= 1.0 and la.surface.fill[-1] == 255
                   for la in self.doc.layers)

    @property
    def cache_nbytes(self) -> int:
        return self._cache.nbytes

    def _check_stack(self) -> None:
        """Rebuild the runs (and drop the caches) if the stack or a layer's look changed
        since the caches were filled, whether or not an event said so."""
        doc = self.doc
        sig = (doc.active_index, doc.width, doc.height,
               *((la.id, la.visible, la.blend_mode, la.opacity) for la in doc.layers))
        if sig == self._signature:
            return
        self._cache.clear()
        self._signature = sig
        self._runs = _runs(doc.layers[doc.active_index + 1:])
        self._run_of = {la.id: i for i, run in enumerate(self._runs) for la in run.layers}

    def _stack_tile(self, layers: Sequence[Layer], key: TileKey, ts: int) -> np.ndarray:
        acc = np.zeros((ts, ts, 4), np.float32)
        for layer in layers:
            if layer.visible and not _layer_is_blank_at(layer, key):
                composite_layer(acc, layer.surface.tile_or_fill(key), layer.opacity, layer.blend_mode)
        return acc

    def _below_tile(self, key: TileKey, ts: int) -> np.ndarray:
        hit = self._cache.get((_BELOW, key))
        if hit is not None:
            return hit[0]  # type: ignore[return-value]
        t = self._stack_tile(self.doc.layers[: self.doc.active_index], key, ts)
        self._cache.put((_BELOW, key), t, t.nbytes, self.cache_budget)
        return t

    def _run_tile(self, i: int, key: TileKey, ts: int) -> Transfer | None:
        """The cached affine map of run `i` over tile `key` (None: the run is empty there)."""
        hit = self._cache.get((i, key))
        if hit is not None:
            return hit[0]  # type: ignore[return-value]
        t: Transfer | None = None
        for layer in self._runs[i].layers:
            if not _layer_is_blank_at(layer, key):
                if t is None:
                    t = Transfer((ts, ts))
                t.then(layer.surface.tile_or_fill(key), layer.opacity, layer.blend_mode)
        self._cache.put((i, key), t, t.nbytes if t is not None else 64, self.cache_budget)
        return t

    # -- compositing --------------------------------------------------------------------
    def composite(self, rect: Rect) -> np.ndarray:
        """Premultiplied float32 RGBA of the visible stack inside `rect` (clamped to the doc).

        Gathers the below-projection for the rect, blends the active layer once, then
        applies each run above: its cached affine map, or the one non-affine layer.
        """
        rect = rect.intersect(self.doc.rect)
        out = np.empty((rect.h, rect.w, 4), np.float32)
        if rect.is_empty():
            return out
        self._check_stack()
        doc = self.doc
        ts = doc.mask.tile_size
        a = doc.active_index
        active = doc.layers[a] if 0 <= a < len(doc.layers) else None
        parts = []
        x0, y0, x1, y1 = rect.x, rect.y, rect.x + rect.w, rect.y + rect.h
        for ky in range(y0 // ts, (y1 - 1) // ts + 1):
            ty = ky * ts
            a, b = max(y0, ty), min(y1, ty + ts)
            ys, oys = slice(a - ty, b - ty), slice(a - y0, b - y0)
            for kx in range(x0 // ts, (x1 - 1) // ts + 1):
                tx = kx * ts
                c, d = max(x0, tx), min(x1, tx + ts)
                key = (kx, ky)
                xs, oxs = slice(c - tx, d - tx), slice(c - x0, d - x0)
                out[oys, oxs] = self._below_tile(key, ts)[ys, xs]
                parts.append((key, ys, xs, oys, oxs))
        if active is not None and active.visible and any(
            not _layer_is_blank_at(active, p[0]) for p in parts
        ):
            composite_layer(out, active.surface.read(rect), active.opacity, active.blend_mode)
        for i, run in enumerate(self._runs):
            if run.affine:
                pieces = [(t, ys, xs, oys, oxs) for key, ys, xs, oys, oxs in parts
                          if (t := self._run_tile(i, key, ts)) is not None]
                if len(pieces) <= 2:
                    for t, ys, xs, oys, oxs in pieces:
                        t.apply(out[oys, oxs], ys, xs)
                else:
                    Transfer.gather(pieces, out.shape[:2]).apply(out)
            else:
                layer = run.layers[0]
                if any(not _layer_is_blank_at(layer, p[0]) for p in parts):
                    composite_layer(out, layer.surface.read(rect), layer.opacity,
                                    layer.blend_mode)
        return out

    def display(self, rect: Rect) -> np.ndarray:
        """Premultiplied uint8 RGBA, ready for a QImage (Format_RGBA8888_Premultiplied)."""
        return to_display(self.composite(rect))

    # -- reduced resolution (zoomed-out views and first pictures) -----------------------
    def composite_sampled(self, rect: Rect, step: int) -> np.ndarray:
        """Premultiplied float32 of the visible stack at every `step`-th pixel of `rect`
        (see `TiledSurface.sample`), composited from the layers' own tiles: the
        full-resolution pixels in between are never read, and the caches are not used."""
        return _run_steps(self._sampled_steps(rect, step))

    def _sampled_steps(self, rect: Rect, step: int) -> Generator[None, None, np.ndarray]:
        return sampled_steps(list(self.doc.layers), rect.intersect(self.doc.rect), step)

    def display_level(self, rect: Rect, level: int, supersample: bool = True) -> np.ndarray:
        """Premultiplied uint8 of `rect` at 1 / 2**level of full resolution (pixel i
        covers rect.x + i * 2**level ...). Level 0 is `display`. With `supersample`,
        each pixel averages 2 x 2 samples; without, it is one point sample (cheaper, for
        a first picture that a refined one replaces)."""
        return _run_steps(self.display_level_steps(rect, level, supersample))

    def display_level_steps(self, rect: Rect, level: int, supersample: bool = True
                            ) -> Generator[None, None, np.ndarray]:
        """`display_level` one layer at a time: the generator yields after each layer
        and returns the pixels, so a caller can spread one tile over several frames."""
        if level <= 0:
            return self.display(rect)
        rect = rect.intersect(self.doc.rect)
        step = 1 << level
        if not supersample:
            acc = yield from self._sampled_steps(rect, step)
            return to_display(acc)
        fine = yield from self._sampled_steps(rect, step // 2)
        h, w = -(-rect.h // step), -(-rect.w // step)
        if fine.shape[0] != 2 * h or fine.shape[1] != 2 * w:  # odd edge: repeat the last sample
            fine = np.pad(fine, ((0, 2 * h - fine.shape[0]), (0, 2 * w - fine.shape[1]), (0, 0)),
                          mode="edge")
        # the 2 x 2 mean as four strided adds: several times faster than a reshape and a
        # sum over two axes, which held the GUI thread ~30 ms on a big tile
        avg = fine[0::2, 0::2] + fine[1::2, 0::2]
        avg += fine[0::2, 1::2]
        avg += fine[1::2, 1::2]
        avg *= np.float32(0.25)
        return to_display(avg)

    def flatten(self, rect: Rect | None = None) -> np.ndarray:
        """Straight uint8 RGBA of the whole image (or `rect`), without touching the caches."""
        return composite_layers(self.doc.layers, rect or self.doc.rect)

    def pick_color(self, x: int, y: int) -> tuple[int, int, int, int]:
        px = to_straight_uint8(self.composite(Rect(int(x), int(y), 1, 1)))
        return tuple(int(c) for c in px[0, 0])  # type: ignore[return-value]
