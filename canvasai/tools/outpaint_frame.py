"""The outpaint frame: how far past each edge the person wants the canvas extended."""

from __future__ import annotations

from collections.abc import Callable

from canvasai.core.geometry import Rect

MAX_MARGIN = 4096


class OutpaintFrame:
    """Margins (left, top, right, bottom) beyond the canvas, with change callbacks."""

    def __init__(self) -> None:
        self.margins: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.on_change: list[Callable[[tuple[int, int, int, int]], None]] = []

    def set(self, left: int, top: int, right: int, bottom: int) -> None:
        m = tuple(max(0, min(MAX_MARGIN, int(v))) for v in (left, top, right, bottom))
        if m != self.margins:
            self.margins = m  # type: ignore[assignment]
            for cb in list(self.on_change):
                cb(self.margins)

    def clear(self) -> None:
        self.set(0, 0, 0, 0)

    def rect(self, doc_rect: Rect) -> Rect | None:
        """The frame in document coordinates, or None when there are no margins."""
        if not any(self.margins):
            return None
        left, top, right, bottom = self.margins
        return doc_rect.adjusted(left, top, right, bottom)
