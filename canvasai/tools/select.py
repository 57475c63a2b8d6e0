"""Rectangle and lasso selection. Shift adds, Alt subtracts, Shift+Alt intersects."""

from __future__ import annotations

from canvasai.core.geometry import Rect
from canvasai.document.selection import SelectMode, select_none, select_polygon, select_rect
from canvasai.tools.base import PointerEvent, Tool


def mode_for(ev: PointerEvent) -> SelectMode:
    shift, alt = "shift" in ev.modifiers, "alt" in ev.modifiers
    if shift and alt:
        return SelectMode.INTERSECT
    if shift:
        return SelectMode.ADD
    if alt:
        return SelectMode.SUBTRACT
    return SelectMode.REPLACE


class RectSelectTool(Tool):
    name = "rect_select"
    label = "Rectangle selection"
    shortcut = "Ctrl+R"

    def __init__(self, ctx) -> None:  # noqa: ANN001
        super().__init__(ctx)
        self._start: PointerEvent | None = None
        self._rect: Rect | None = None
        self._mode = SelectMode.REPLACE

    def press(self, ev: PointerEvent) -> None:
        self._start = ev
        self._mode = mode_for(ev)
        self._rect = Rect(round(ev.x), round(ev.y), 0, 0)

    def move(self, ev: PointerEvent) -> None:
        if self._start is None:
            return
        s = self._start
        self._rect = Rect.from_bounds(round(min(s.x, ev.x)), round(min(s.y, ev.y)),
                                      round(max(s.x, ev.x)), round(max(s.y, ev.y)))

    def release(self, ev: PointerEvent) -> None:
        if self._start is None:
            return
        self.move(ev)
        rect, mode = self._rect, self._mode
        self._start = self._rect = None
        if rect is None or rect.is_empty():
            if mode is SelectMode.REPLACE:  # a click without a drag deselects
                select_none(self.ctx.doc)
            return
        select_rect(self.ctx.doc, rect, mode)

    def cancel(self) -> None:
        self._start = self._rect = None

    def overlay(self) -> list[tuple[str, object]]:
        return [("rect", self._rect)] if self._rect is not None else []


class LassoSelectTool(Tool):
    name = "lasso_select"
    label = "Lasso selection"
    shortcut = "L"

    def __init__(self, ctx) -> None:  # noqa: ANN001
        super().__init__(ctx)
        self._points: list[tuple[float, float]] | None = None
        self._mode = SelectMode.REPLACE

    def press(self, ev: PointerEvent) -> None:
        self._points = [(ev.x, ev.y)]
        self._mode = mode_for(ev)

    def move(self, ev: PointerEvent) -> None:
        if self._points is not None:
            last = self._points[-1]
            if abs(ev.x - last[0]) + abs(ev.y - last[1]) >= 1.0:
                self._points.append((ev.x, ev.y))

    def release(self, ev: PointerEvent) -> None:
        if self._points is None:
            return
        self.move(ev)
        pts, self._points = self._points, None
        if len(pts) < 3:
            if self._mode is SelectMode.REPLACE:
                select_none(self.ctx.doc)
            return
        select_polygon(self.ctx.doc, pts, self._mode)

    def cancel(self) -> None:
        self._points = None

    def overlay(self) -> list[tuple[str, object]]:
        return [("polygon", list(self._points))] if self._points else []
