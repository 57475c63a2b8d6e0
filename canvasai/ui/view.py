"""The canvas view transform: document pixels <-> widget pixels (zoom + pan)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF

from canvasai.core.geometry import Rect

ZOOM_MIN = 1 / 64
ZOOM_MAX = 64.0
# The steps Ctrl +/- walk through (Krita-like: fine below 100 %, doubling above).
ZOOM_STEPS = (
    1 / 64, 1 / 48, 1 / 32, 1 / 24, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3,
    1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0,
)


def clamp_zoom(zoom: float) -> float:
    return max(ZOOM_MIN, min(ZOOM_MAX, zoom))


class ViewTransform:
    """widget = doc * zoom + offset. `offset` is where the document origin lands, in widget px."""

    def __init__(self, zoom: float = 1.0, offset: QPointF | None = None) -> None:
        self.zoom = clamp_zoom(zoom)
        self.offset = QPointF(offset) if offset is not None else QPointF(0.0, 0.0)

    def to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(x * self.zoom + self.offset.x(), y * self.zoom + self.offset.y())

    def to_doc(self, p: QPointF) -> tuple[float, float]:
        return ((p.x() - self.offset.x()) / self.zoom, (p.y() - self.offset.y()) / self.zoom)

    def rect_to_widget(self, r: Rect) -> QRectF:
        return QRectF(r.x * self.zoom + self.offset.x(), r.y * self.zoom + self.offset.y(),
                      r.w * self.zoom, r.h * self.zoom)

    def rect_to_widget_aligned(self, r: Rect, margin: int = 1) -> QRect:
        """The widget-pixel rect (rounded outwards, plus `margin`) that covers doc rect `r`."""
        f = self.rect_to_widget(r)
        x0, y0 = math.floor(f.left()) - margin, math.floor(f.top()) - margin
        x1, y1 = math.ceil(f.right()) + margin, math.ceil(f.bottom()) + margin
        return QRect(x0, y0, x1 - x0, y1 - y0)

    def widget_rect_to_doc(self, r: QRectF | QRect) -> Rect:
        """The doc rect (rounded outwards) seen through widget rect `r`."""
        rf = QRectF(r)
        x0, y0 = self.to_doc(rf.topLeft())
        x1, y1 = self.to_doc(rf.bottomRight())
        return Rect.from_bounds(math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))

    def zoom_around(self, new_zoom: float, anchor: QPointF) -> None:
        """Change zoom keeping the doc point under widget point `anchor` fixed."""
        new_zoom = clamp_zoom(new_zoom)
        dx, dy = self.to_doc(anchor)
        self.zoom = new_zoom
        self.offset = QPointF(anchor.x() - dx * new_zoom, anchor.y() - dy * new_zoom)

    def pan(self, dx: float, dy: float) -> None:
        self.offset = QPointF(self.offset.x() + dx, self.offset.y() + dy)

    def fit(self, doc_w: int, doc_h: int, view_w: int, view_h: int, margin: int = 24) -> None:
        """Show the whole document centred, with `margin` widget pixels around it."""
        aw, ah = max(1, view_w - 2 * margin), max(1, view_h - 2 * margin)
        self.zoom = clamp_zoom(min(aw / doc_w, ah / doc_h))
        self.center(doc_w, doc_h, view_w, view_h)

    def center(self, doc_w: int, doc_h: int, view_w: int, view_h: int) -> None:
        self.offset = QPointF((view_w - doc_w * self.zoom) / 2, (view_h - doc_h * self.zoom) / 2)


def detail_level(zoom: float, max_level: int = 6) -> int:
    """The resolution level to draw at `zoom`: 0 (full resolution) from 75 % up, else the
    L whose scale 1 / 2**L is nearest the zoom (so the image is drawn at 0.7x-1.4x)."""
    if zoom >= 0.75:
        return 0
    return max(0, min(max_level, round(math.log2(1.0 / zoom))))


def next_zoom_step(zoom: float, direction: int) -> float:
    """The next preset zoom above (direction > 0) or below the current one."""
    eps = 1e-6
    if direction > 0:
        for z in ZOOM_STEPS:
            if z > zoom + eps:
                return z
        return ZOOM_STEPS[-1]
    for z in reversed(ZOOM_STEPS):
        if z < zoom - eps:
            return z
    return ZOOM_STEPS[0]
