"""Brush, eraser, mask brush and mask eraser: dabs spaced along the pointer path."""

from __future__ import annotations

import math

from canvasai.core.geometry import Rect
from canvasai.document.stroke import Stroke
from canvasai.tools.base import PointerEvent, Tool


class BrushTool(Tool):
    name = "brush"
    label = "Brush"
    shortcut = "B"
    shows_brush_outline = True
    erase = False
    on_mask = False

    def __init__(self, ctx) -> None:  # noqa: ANN001 - ToolContext
        super().__init__(ctx)
        self._stroke: Stroke | None = None
        self._last: PointerEvent | None = None
        self._residual = 0.0  # distance travelled since the last dab

    # -- stroke lifecycle ----------------------------------------------------------
    def _begin(self) -> Stroke | None:
        doc = self.ctx.doc
        if self.on_mask:
            return Stroke(doc.mask, doc.rect, erase=self.erase)
        layer = doc.active_layer
        if layer is None:
            self.ctx.status("There is no layer to paint on: add a layer first.")
            return None
        if layer.locked:
            self.ctx.status(f"Layer “{layer.name}” is locked.")
            return None
        if not layer.visible:
            self.ctx.status(f"Layer “{layer.name}” is hidden: show it to paint on it.")
            return None
        b = self.ctx.brush
        return Stroke(layer.surface, doc.rect, color=self.ctx.foreground, opacity=b.opacity,
                      erase=self.erase, clip=doc.selection)

    def press(self, ev: PointerEvent) -> None:
        self._stroke = self._begin()
        if self._stroke is None:
            return
        self._last = ev
        self._residual = 0.0
        self._emit(self._dab(ev))

    def move(self, ev: PointerEvent) -> None:
        if self._stroke is None or self._last is None:
            return
        a = self._last
        dist = math.hypot(ev.x - a.x, ev.y - a.y)
        if dist <= 0:
            return
        dirty = Rect(0, 0, 0, 0)
        step = max(0.5, self.ctx.brush.spacing * self._diameter(ev.pressure))
        t = step - self._residual
        while t <= dist:
            f = t / dist
            p = PointerEvent(a.x + (ev.x - a.x) * f, a.y + (ev.y - a.y) * f,
                             a.pressure + (ev.pressure - a.pressure) * f)
            dirty = dirty.union(self._dab(p))
            t += step
        self._residual = dist - (t - step)
        self._last = ev
        self._emit(dirty)

    def release(self, ev: PointerEvent) -> None:
        if self._stroke is None:
            return
        stroke = self._stroke
        self._stroke = None
        before = stroke.finish()
        doc = self.ctx.doc
        target = "mask" if self.on_mask else doc.active_layer
        doc.push_tiles_command(target, before, stroke.rect, self.label + " stroke")

    def cancel(self) -> None:
        if self._stroke is not None:
            stroke = self._stroke
            self._stroke = None
            stroke.surface.swap_tiles(stroke.finish())
            self._emit(stroke.rect)

    # -- dabs ------------------------------------------------------------------------
    def _diameter(self, pressure: float) -> float:
        b = self.ctx.brush
        if not b.pressure_size:
            return b.size
        p = b.pressure(pressure)
        return b.size * (b.min_size_fraction + (1 - b.min_size_fraction) * p)

    def _dab(self, ev: PointerEvent) -> Rect:
        b = self.ctx.brush
        flow = b.flow * (b.pressure(ev.pressure) if b.pressure_opacity else 1.0)
        assert self._stroke is not None
        return self._stroke.dab(ev.x, ev.y, self._diameter(ev.pressure) / 2, b.hardness, flow)

    def _emit(self, rect: Rect) -> None:
        if rect.is_empty():
            return
        doc = self.ctx.doc
        if self.on_mask:
            doc.mask_changed.emit(rect)
        else:
            doc.notify_pixels(doc.active_layer, rect)


class EraserTool(BrushTool):
    name = "eraser"
    label = "Eraser"
    shortcut = "E"
    erase = True


class MaskBrushTool(BrushTool):
    name = "mask_brush"
    label = "Mask brush"
    shortcut = "M"
    on_mask = True


class MaskEraserTool(BrushTool):
    name = "mask_eraser"
    label = "Mask eraser"
    shortcut = "Shift+M"
    on_mask = True
    erase = True
