"""Colour picker: samples the composited image under the pointer."""

from __future__ import annotations

from canvasai.tools.base import PointerEvent, Tool


class ColorPickerTool(Tool):
    name = "picker"
    label = "Colour picker"
    shortcut = "P"

    def press(self, ev: PointerEvent) -> None:
        self._pick(ev)

    def move(self, ev: PointerEvent) -> None:
        self._pick(ev)

    def _pick(self, ev: PointerEvent) -> None:
        doc = self.ctx.doc
        if not doc.rect.contains_point(ev.x, ev.y):
            return
        r, g, b, a = self.ctx.compositor.pick_color(int(ev.x), int(ev.y))
        if a == 0:
            return
        self.ctx.foreground = (r, g, b)
        if self.ctx.on_color_picked:
            self.ctx.on_color_picked((r, g, b))
