"""Move a layer's content by dragging (one undo step per drag)."""

from __future__ import annotations

import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.layer import Layer
from canvasai.document.tiles import TileKey
from canvasai.tools.base import PointerEvent, Tool


class MoveTool(Tool):
    name = "move"
    label = "Move layer"
    shortcut = "V"

    def __init__(self, ctx) -> None:  # noqa: ANN001
        super().__init__(ctx)
        self._layer: Layer | None = None
        self._origin: tuple[float, float] = (0.0, 0.0)
        self._content: np.ndarray | None = None
        self._bounds = Rect(0, 0, 0, 0)
        self._before: dict[TileKey, np.ndarray | None] = {}
        self._shown = Rect(0, 0, 0, 0)
        self._touched = Rect(0, 0, 0, 0)

    def press(self, ev: PointerEvent) -> None:
        layer = self.ctx.doc.active_layer
        if layer is None:
            return
        if layer.locked:
            self.ctx.status(f"Layer “{layer.name}” is locked.")
            return
        if layer.surface.fill.any():
            self.ctx.status("A filled background layer cannot be moved.")
            return
        bounds = layer.surface.bounds()
        if bounds.is_empty():
            return
        self._layer = layer
        self._origin = (ev.x, ev.y)
        self._bounds = self._shown = self._touched = bounds
        self._content = layer.surface.read(bounds)
        # Copy-on-write: freeze the tiles instead of copying the whole layer up front.
        snap = layer.surface.snapshot()
        self._before = {k: snap.tile(k) for k in snap.tile_keys()}

    def move(self, ev: PointerEvent) -> None:
        if self._layer is None or self._content is None:
            return
        dx, dy = round(ev.x - self._origin[0]), round(ev.y - self._origin[1])
        target = self._bounds.translated(dx, dy)
        if target == self._shown:
            return
        surf = self._layer.surface
        surf.clear(self._shown)
        surf.write(target.x, target.y, self._content)
        dirty = self._shown.union(target)
        self._shown = target
        self._touched = self._touched.union(target)
        self.ctx.doc.notify_pixels(self._layer, dirty)

    def release(self, ev: PointerEvent) -> None:
        if self._layer is None:
            return
        self.move(ev)
        layer, before = self._layer, self._before
        self._layer, self._content, self._before = None, None, {}
        if self._shown == self._bounds:
            return
        # Tiles the content now covers that were empty before also need restoring on undo.
        for key in layer.surface.tile_keys():
            before.setdefault(key, None)
        before = {k: v for k, v in before.items()
                  if not _same(v, layer.surface.tile(k))}
        self.ctx.doc.push_tiles_command(layer, before, self._touched, "Move layer")

    def cancel(self) -> None:
        if self._layer is not None:
            layer = self._layer
            for key in layer.surface.tile_keys():
                self._before.setdefault(key, None)
            layer.surface.swap_tiles(self._before)
            self.ctx.doc.notify_pixels(layer, self._touched)
            self._layer, self._content, self._before = None, None, {}


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is b:
        return True
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))
