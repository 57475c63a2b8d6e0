"""The outpaint frame tool: drag any edge (or corner) of the canvas outwards to extend it."""

from __future__ import annotations

from canvasai.core.geometry import Rect
from canvasai.tools.base import PointerEvent, Tool
from canvasai.tools.outpaint_frame import OutpaintFrame


class FrameTool(Tool):
    """Drag near an edge of the frame to move that edge; near a corner moves both."""

    name = "frame"
    label = "Outpaint frame"
    shortcut = "F"
    grab_px = 24.0  # how close (document px) to an edge a press must be

    def __init__(self, ctx) -> None:  # noqa: ANN001 - ToolContext
        super().__init__(ctx)
        self._edges: tuple[bool, bool, bool, bool] | None = None
        self._start: tuple[float, float] = (0.0, 0.0)
        self._start_margins = (0, 0, 0, 0)

    @property
    def frame(self) -> OutpaintFrame:
        return self.ctx.frame

    def _current(self) -> Rect:
        doc = self.ctx.doc
        return self.frame.rect(doc.rect) or doc.rect

    def press(self, ev: PointerEvent) -> None:
        r = self._current()
        g = self.grab_px
        near = (abs(ev.x - r.x) <= g, abs(ev.y - r.y) <= g, abs(ev.x - r.x1) <= g,
                abs(ev.y - r.y1) <= g)
        if not any(near):
            # A press outside the canvas grabs the side it is on.
            near = (ev.x < r.x, ev.y < r.y, ev.x > r.x1, ev.y > r.y1)
        if not any(near):
            self.ctx.status("Drag an edge of the canvas outwards to extend it.")
            return
        self._edges = near  # type: ignore[assignment]
        self._start = (ev.x, ev.y)
        self._start_margins = self.frame.margins

    def move(self, ev: PointerEvent) -> None:
        if self._edges is None:
            return
        dx, dy = ev.x - self._start[0], ev.y - self._start[1]
        left, top, right, bottom = self._start_margins
        e_left, e_top, e_right, e_bottom = self._edges
        snap = 8  # models want sizes in multiples of 8

        def q(v: float) -> int:
            return int(round(v / snap)) * snap

        self.frame.set(
            q(left - dx) if e_left else left,
            q(top - dy) if e_top else top,
            q(right + dx) if e_right else right,
            q(bottom + dy) if e_bottom else bottom,
        )

    def release(self, ev: PointerEvent) -> None:
        self.move(ev)
        self._edges = None

    def cancel(self) -> None:
        if self._edges is not None:
            self.frame.set(*self._start_margins)
            self._edges = None
