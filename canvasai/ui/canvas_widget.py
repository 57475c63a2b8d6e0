"""The canvas: a QPainter raster view of the document that drives the active tool.

Drawing goes through per-tile QImage caches (the composite, one per resolution
level, and the mask tint) that document events invalidate by rectangle; a
document event repaints only the widget area it maps to. Zoomed out, the
composite comes from the level that matches the zoom (2x2 supersampled from the
layers at that resolution, never the full-resolution document); a tile not built
yet shows a point-sampled picture two levels coarser (built first, a flat
placeholder until it is), and the sharp tiles replace it frame by frame. Missing
tiles are built in short frames a few ms apart (the coarse, sharp and mask caches
share one time budget per frame), mostly between paints, which then redraw just
the new tiles; timers and input run in between. Input (mouse, tablet, wheel, keys) becomes
`PointerEvent`s in document coordinates for the tool, or view changes (zoom
around the cursor, space-drag and middle-button pan).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRect, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QBrush,
    QColor,
    QCursor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPointingDevice,
    QPolygonF,
    QResizeEvent,
    QTabletEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QWidget

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.tiles import TiledSurface
from canvasai.tools.base import PointerEvent, Tool
from canvasai.tools.transform import (
    MOVE,
    ROTATE,
    ROTATE_STEM_PX,
    TransformJob,
    TransformResult,
    TransformTool,
)
from canvasai.ui.background import run_in_pool
from canvasai.ui.overlays import render_mask_tint, selection_outline
from canvasai.ui.tile_cache import FrameBudget, TileImageCache, image_with_array
from canvasai.ui.transform_dialog import TransformBar
from canvasai.ui.view import ViewTransform, clamp_zoom, detail_level, next_zoom_step

# Time one frame (a paint, or a building frame between paints) may spend building
# missing tiles, all caches together (coarse preview, sharp, mask), so no stretch of
# the GUI thread passes ~15-20 ms (plus at most one compositing step, which cannot be
# cut). At 30 ms per cache, and the coarse preview built without limit, a 4096^2
# 10-layer document held the GUI thread 70-120 ms per paint after an upscale.
BUILD_SECONDS_PER_PAINT = 0.012
# Pause between two building frames, so timers and input get their turn (zero-delay
# repaints ran the building frames back to back).
BUILD_FRAME_INTERVAL_MS = 8
MAX_LEVEL = 6  # 1/64 resolution: the coarsest cached level (ZOOM_MIN is 1/64)
PREVIEW_LEVELS = 2  # a missing tile shows the picture this many levels coarser meanwhile
WORKSPACE_COLOR = QColor(38, 39, 43)
PENDING_COLOR = QColor(90, 92, 98)  # a tile not composited yet (never mistaken for transparency)
BACKGROUND_TRANSFORM_PIXELS = 1_000_000  # a bigger transform resamples on a pool thread
HANDLE_PX = 7  # transform handles: squares this many screen pixels across


def _checker_brush() -> QBrush:
    pm = QPixmap(16, 16)
    pm.fill(QColor(204, 204, 204))
    p = QPainter(pm)
    p.fillRect(0, 0, 8, 8, QColor(153, 153, 153))
    p.fillRect(8, 8, 8, 8, QColor(153, 153, 153))
    p.end()
    return QBrush(pm)


def _modifiers(mods: Qt.KeyboardModifier) -> frozenset[str]:
    names = ((Qt.KeyboardModifier.ShiftModifier, "shift"),
             (Qt.KeyboardModifier.ControlModifier, "ctrl"),
             (Qt.KeyboardModifier.AltModifier, "alt"))
    return frozenset(name for flag, name in names if mods & flag)


_MODIFIER_KEYS = {Qt.Key.Key_Shift: Qt.KeyboardModifier.ShiftModifier,
                  Qt.Key.Key_Alt: Qt.KeyboardModifier.AltModifier}


def _buttons(buttons: Qt.MouseButton) -> int:
    # Qt's Left/Right/Middle values are 1/2/4, the same as tools.base LEFT/RIGHT/MIDDLE.
    return int(buttons.value) & 7


def _overlay(rgba: np.ndarray | None, rect: Rect | None, what: str
             ) -> tuple[QImage, Rect] | None:
    """A straight RGBA (h, w, 4 uint8) array as a QImage to draw scaled into doc rect
    `rect`; None when there is nothing to draw."""
    if rgba is None or rect is None or rect.is_empty():
        return None
    arr = np.ascontiguousarray(rgba, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise ValueError(f"{what} must be (h, w, 4) RGBA, got shape {arr.shape}")
    image, view = image_with_array(arr.shape[1], arr.shape[0], QImage.Format.Format_RGBA8888)
    view[:] = arr
    return image, rect


class CanvasWidget(QWidget):
    """Shows a document and forwards pointer input to the active tool.

    Signals: `zoom_changed(zoom)`, `cursor_moved(doc_x, doc_y)`, `cursor_left()`,
    `stroke_finished()` (a tool's press-drag-release ended, or was cancelled).
    """

    zoom_changed = Signal(float)
    cursor_moved = Signal(float, float)
    cursor_left = Signal()
    stroke_finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_TabletTracking, True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 150)
        self.view = ViewTransform()
        self._doc: Document | None = None
        self._compositor: Compositor | None = None
        self._tool: Tool | None = None
        self._images: TileImageCache | None = None  # full resolution (level 0)
        self._levels: dict[int, TileImageCache] = {}  # level -> cache, 0 is _images
        self._previews: dict[int, TileImageCache] = {}  # point-sampled first pictures
        self._mask: TileImageCache | None = None
        # Whether the last paint showed the whole visible document (at some resolution).
        self.picture_complete = False
        self._selection: list[QPolygonF] = []
        self._mask_visible = True
        self._preview: tuple[QImage, Rect] | None = None
        self._frame: Rect | None = None
        # live painting: the newest frame over the live area, its opacity, shown or not,
        # and the live area's outline (hidden while a stroke is painted under it)
        self._live: tuple[QImage, Rect] | None = None
        self._live_area: Rect | None = None
        self._live_opacity = 1.0
        self._live_visible = True
        self._checker = _checker_brush()
        self._opaque = False  # the composite has no transparent pixel (no checkerboard)
        self._fit_pending = False
        self._space_held = False
        self._pan_last: QPointF | None = None
        self._stroke_tool: Tool | None = None  # the tool of the stroke in progress
        # Which tool the pen's eraser end uses instead of the current one (None: the same).
        self.eraser_for: Callable[[Tool], Tool | None] | None = None
        self._cursor: QPointF | None = None
        self._outline_rect = QRect()
        self._overlay_rect = QRect()
        self._more_tiles = QTimer(self)
        self._more_tiles.setSingleShot(True)
        self._more_tiles.timeout.connect(self._build_more)
        self._tiles_missing = False  # the view has tiles left for later frames
        # The transform tool: its numeric bar, its preview image, resamples in flight.
        self._transform_bar: TransformBar | None = None
        self._transform_image: tuple[np.ndarray, QImage] | None = None
        self._transform_jobs: dict[int, tuple[TransformTool, TransformJob]] = {}
        self._hover_cursor: QCursor | Qt.CursorShape | None = None
        self._last_pointer: PointerEvent | None = None  # the drag's latest sample
        self._update_cursor_shape()

    # -- public API ---------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._doc

    @property
    def tool(self) -> Tool | None:
        return self._tool

    @property
    def zoom(self) -> float:
        return self.view.zoom

    @property
    def tiles_cached(self) -> int:
        """How many composite tiles are cached (tests and diagnostics)."""
        return len(self._images) if self._images is not None else 0

    @property
    def refining(self) -> bool:
        """Sharper tiles are still being built for the current view (idle-time work).

        (A cache's part-way built tile does not count: after a zoom, the old level's
        one is never finished.)"""
        if not self.isVisible():
            return False  # (no paint comes to build them)
        return self._tiles_missing or self._more_tiles.isActive()

    def detail_level(self) -> int:
        """The resolution level drawn at the current zoom: 0 at 100 % and above, L when
        the zoom is about 1 / 2**L."""
        return detail_level(self.view.zoom, MAX_LEVEL)

    def _level_cache(self, level: int) -> TileImageCache:
        cache = self._levels.get(level)
        if cache is None:
            comp, doc = self._compositor, self._doc
            assert comp is not None and doc is not None
            cache = TileImageCache(
                lambda r, lv=level: comp.display_level(r, lv), doc.rect, level=level,
                steps=lambda r, lv=level: comp.display_level_steps(r, lv))
            self._levels[level] = cache
        return cache

    def _preview_cache(self, level: int) -> TileImageCache:
        cache = self._previews.get(level)
        if cache is None:
            comp, doc = self._compositor, self._doc
            assert comp is not None and doc is not None
            cache = TileImageCache(
                lambda r, lv=level: comp.display_level(r, lv, supersample=False), doc.rect,
                level=level,
                steps=lambda r, lv=level: comp.display_level_steps(r, lv, supersample=False))
            self._previews[level] = cache
        return cache

    def _all_image_caches(self) -> list[TileImageCache]:
        return [*self._levels.values(), *self._previews.values()]

    def set_document(self, doc: Document | None, compositor: Compositor | None) -> None:
        """Show `doc` (drawn through `compositor`) and fit it in the view."""
        self._settle_transform()
        self._finish_stroke(cancel=True)
        if self._doc is not None:
            self._doc.pixels_changed.disconnect(self._on_pixels)
            self._doc.mask_changed.disconnect(self._on_mask)
            self._doc.selection_changed.disconnect(self._on_selection)
            self._doc.size_changed.disconnect(self._on_size)
            self._doc.active_changed.disconnect(self._on_active)
        self._doc, self._compositor = doc, compositor
        self._preview = None
        self._frame = None
        self._levels.clear()
        self._previews.clear()
        self.picture_complete = False
        self._tiles_missing = doc is not None  # until a paint has built the tiles
        if doc is None or compositor is None:
            self._images = self._mask = None
            self._selection = []
            self.update()
            return
        doc.pixels_changed.connect(self._on_pixels)
        doc.mask_changed.connect(self._on_mask)
        doc.selection_changed.connect(self._on_selection)
        doc.size_changed.connect(self._on_size)
        doc.active_changed.connect(self._on_active)
        self._images = TileImageCache(compositor.display, doc.rect)
        self._levels[0] = self._images
        self._mask = TileImageCache(lambda r: render_mask_tint(doc, r), doc.rect)
        self._selection = selection_outline(doc)
        self._fit_pending = True
        if self.isVisible():
            self.fit_to_view()
        self.update()

    def set_tool(self, tool: Tool | None) -> None:
        """Make `tool` the one pointer input drives (an operation in progress is cancelled)."""
        if tool is self._tool:
            return
        self._settle_transform()
        self._finish_stroke(cancel=True)
        old, self._tool = self._tool, tool
        app = QApplication.instance()
        if isinstance(old, TransformTool):
            if self._transform_changed in old.on_change:
                old.on_change.remove(self._transform_changed)
            if app is not None:
                app.removeEventFilter(self)
        if isinstance(tool, TransformTool):
            tool.pixel_size = 1.0 / self.view.zoom
            tool.on_change.append(self._transform_changed)
            if app is not None:  # see eventFilter: other widgets apply a pending transform
                app.installEventFilter(self)
        self._hover_cursor = None
        self._sync_transform_bar()
        self._make_room_for_transform()
        self._update_cursor_shape()
        self._update_outline()
        self._update_overlay()

    def cancel_stroke(self) -> bool:
        """Abandon a stroke or drag in progress (before undo, or when the document changes);
        a transform not applied yet is cancelled (its pixels go back). True if something
        was abandoned (an Undo could stop there)."""
        stroking = self._stroke_tool is not None
        self._finish_stroke(cancel=True)
        return self.cancel_transform() or stroking

    def set_mask_visible(self, visible: bool) -> None:
        self._mask_visible = bool(visible)
        self.update()

    @property
    def mask_visible(self) -> bool:
        return self._mask_visible

    def set_preview(self, rgba: np.ndarray | None, rect: Rect | None = None) -> None:
        """Draw `rgba` (h, w, 4 straight uint8) scaled into doc rect `rect` over the image.

        Used for live generation previews; None removes it. The document is not touched.
        """
        old = self._preview[1] if self._preview else None
        self._preview = _overlay(rgba, rect, "preview")
        self._update_doc_rects((old, rect), 2)

    def set_frame_rect(self, rect: Rect | None) -> None:
        """Show a dashed frame (e.g. the outpaint target) around doc rect `rect`; None hides it."""
        old, self._frame = self._frame, rect
        self._update_doc_rects((old, rect), 4)

    @property
    def frame_rect(self) -> Rect | None:
        return self._frame

    # -- live painting overlay -------------------------------------------------------------
    def set_live_overlay(self, rgba: np.ndarray | None, rect: Rect | None = None) -> None:
        """Draw the live frame `rgba` (h, w, 4 straight uint8, any size) scaled into doc
        rect `rect`, above the picture and any generation preview; None removes it."""
        old = self._live[1] if self._live else None
        self._live = _overlay(rgba, rect, "live frame")
        self._update_doc_rects((old, rect), 4)

    def set_live_area(self, rect: Rect | None) -> None:
        """Outline the live area (a thin dashed line); None hides it."""
        old, self._live_area = self._live_area, rect
        self._update_doc_rects((old, rect), 4)

    def _update_doc_rects(self, rects: tuple[Rect | None, ...], margin: int) -> None:
        """Repaint the widget over each document rect (None: nothing), `margin` px wider."""
        for r in rects:
            if r is not None:
                self.update(self.view.rect_to_widget_aligned(r, margin))

    def set_live_opacity(self, opacity: float) -> None:
        self._live_opacity = max(0.0, min(1.0, float(opacity)))
        if self._live is not None:
            self.update(self.view.rect_to_widget_aligned(self._live[1], 4))

    def set_live_visible(self, visible: bool) -> None:
        self._live_visible = bool(visible)
        if self._live is not None:
            self.update(self.view.rect_to_widget_aligned(self._live[1], 4))

    @property
    def live_overlay(self) -> Rect | None:
        """Where the live frame is drawn (None: no frame)."""
        return self._live[1] if self._live else None

    @property
    def live_overlay_shown(self) -> bool:
        """The live frame is on screen now (shown, not hidden, not mid-stroke)."""
        return (self._live is not None and self._live_visible and self._live_opacity > 0
                and self._stroke_tool is None)

    @property
    def stroking(self) -> bool:
        """A press-drag-release of a tool is in progress."""
        return self._stroke_tool is not None

    # -- view ----------------------------------------------------------------------------
    def fit_to_view(self) -> None:
        if self._doc is None:
            return
        self._fit_pending = False
        frame = self._frame
        top = self._transform_inset()  # the transform bar's strip stays clear of the picture
        area = self._doc.rect if frame is None else frame.union(self._doc.rect)
        # (with a frame: show the whole outpaint frame, not just the canvas inside it)
        self.view.fit(area.w, area.h, self.width(), self.height() - top)
        self.view.offset = QPointF(self.view.offset.x() - area.x * self.view.zoom,
                                   self.view.offset.y() - area.y * self.view.zoom + top)
        self._view_changed()

    def actual_pixels(self) -> None:
        """100 % zoom, keeping the view centre where it is."""
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the doc point under `anchor` (default: the view centre) in place."""
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        self.view.zoom_around(clamp_zoom(zoom), anchor)
        self._view_changed()

    def zoom_in(self) -> None:
        self.set_zoom(next_zoom_step(self.view.zoom, +1))

    def zoom_out(self) -> None:
        self.set_zoom(next_zoom_step(self.view.zoom, -1))

    def pan_by(self, dx: float, dy: float) -> None:
        self.view.pan(dx, dy)
        self._view_changed()

    def map_to_doc(self, p: QPointF) -> tuple[float, float]:
        return self.view.to_doc(p)

    def map_from_doc(self, x: float, y: float) -> QPointF:
        return self.view.to_widget(x, y)

    def _view_changed(self) -> None:
        self.zoom_changed.emit(self.view.zoom)
        if isinstance(self._tool, TransformTool):
            self._tool.pixel_size = 1.0 / self.view.zoom
        self._overlay_rect = self._overlay_bounds()
        self._update_outline()
        self.update()

    # -- document events -------------------------------------------------------------------
    def _on_pixels(self, _layer: object, rect: Rect) -> None:
        for cache in self._all_image_caches():
            cache.invalidate(rect)
        self.update(self.view.rect_to_widget_aligned(rect))
        if isinstance(self._tool, TransformTool):  # what the tool would grab may have changed
            self._transform_changed()

    def _on_active(self, _layer: object) -> None:
        if isinstance(self._tool, TransformTool):
            self._transform_changed()

    def _on_mask(self, rect: Rect) -> None:
        if self._mask is not None:
            self._mask.invalidate(rect)
        if self._mask_visible:
            self.update(self.view.rect_to_widget_aligned(rect))

    def _on_selection(self, _rect: Rect) -> None:
        if self._doc is not None:
            self._selection = selection_outline(self._doc)
        if isinstance(self._tool, TransformTool):
            self._transform_changed()
        self.update()

    def _on_size(self) -> None:
        doc = self._doc
        if doc is None or self._images is None or self._mask is None:
            return
        for cache in self._all_image_caches():
            cache.clear(doc.rect)
        self._mask.clear(doc.rect)
        self._tiles_missing = True  # until a paint has rebuilt them
        self._selection = selection_outline(doc)
        self.update()

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        exposed = event.rect()
        doc = self._doc
        if doc is None or not self.view.rect_to_widget(doc.rect).contains(QRectF(exposed)):
            p.fillRect(exposed, WORKSPACE_COLOR)  # (inside the document, tiles cover it all)
        if doc is not None and self._images is not None and self._mask is not None:
            self._opaque = self._compositor is not None and self._compositor.opaque
            visible = self.view.widget_rect_to_doc(exposed).intersect(doc.rect)
            missing = False
            if not visible.is_empty():
                # A paint builds tiles only with the time its drawing leaves (the first
                # picture after a change); while building frames are scheduled, it only
                # draws. `_build_more` builds the rest, at least a step per frame.
                building = self._more_tiles.isActive()
                budget = FrameBudget(0.0 if building else BUILD_SECONDS_PER_PAINT,
                                     progress=False)
                missing = self._draw_picture(p, visible, budget)
                if self._mask_visible and not doc.mask.is_blank:
                    missing |= self._draw_tiles(p, self._mask, visible, budget)
                if missing and not self._more_tiles.isActive():
                    self._more_tiles.start(BUILD_FRAME_INTERVAL_MS)
            # (a paint of part of the widget says nothing about the rest)
            whole = exposed.contains(self.rect())
            self._tiles_missing = missing or (self._tiles_missing and not whole)
            self.picture_complete = True
            self._draw_preview(p)
            self._draw_live(p)
            transforming = self._draw_transform_preview(p)
            if not transforming:  # the selection's pixels float: its old outline would mislead
                self._draw_selection(p)
            self._draw_frame(p)
            self._draw_tool_overlay(p)
        self._draw_brush_outline(p)
        p.end()

    @Slot()
    def _build_more(self) -> None:
        """One building frame between paints: build missing tiles of the view (the coarse
        picture first, then the sharp tiles, then the mask tint) under one frame budget,
        and repaint just where tiles were built (a full repaint per frame would cost
        about as much as the building)."""
        doc = self._doc
        if doc is None or self._mask is None or not self.isVisible():
            self._tiles_missing = False
            return
        visible = self.view.widget_rect_to_doc(self.rect()).intersect(doc.rect)
        if visible.is_empty():
            self._tiles_missing = False
            return
        budget = FrameBudget(BUILD_SECONDS_PER_PAINT)
        built: list[Rect] = []
        sharp = self._level_cache(self.detail_level())
        missing = sharp.missing(visible)
        if missing:
            coarse = self._preview_cache(sharp.level + PREVIEW_LEVELS)
            for part in missing:
                built += coarse.build(part, budget)[0]
        more, done = sharp.build(visible, budget)
        built += more
        if self._mask_visible and not doc.mask.is_blank:
            more, mask_done = self._mask.build(visible, budget)
            built += more
            done = done and mask_done
        self._update_doc_rects(tuple(r.intersect(visible) for r in built), 1)
        self._tiles_missing = not done
        if not done:
            self._more_tiles.start(BUILD_FRAME_INTERVAL_MS)

    def _draw_picture(self, p: QPainter, visible: Rect, budget: FrameBudget) -> bool:
        """Draw the composite over `visible` at the zoom's level; True if some tiles still
        wait to be built (a coarser point-sampled picture stands in for them).

        The coarse picture is built first, then the sharp tiles with the time left
        (both under `budget`); sharp tiles ready by then are drawn over the coarse ones.
        """
        sharp = self._level_cache(self.detail_level())
        missing = sharp.missing(visible)
        if missing:
            coarse = self._preview_cache(sharp.level + PREVIEW_LEVELS)
            for part in missing:  # (inside one coarse tile: levels nest)
                self._draw_tiles(p, coarse, part, budget, backdrop=True)
        return self._draw_tiles(p, sharp, visible, budget, backdrop=True, waiting=True)

    def _draw_image(self, p: QPainter, rect: Rect, image: QImage | None, part: Rect,
                    level: int, backdrop: bool) -> None:
        """Draw the `part` of tile `rect` (document pixels) from its level-`level` image."""
        if backdrop and not self._opaque:  # the checkerboard would be hidden anyway
            p.fillRect(self.view.rect_to_widget(part), self._checker)
        if image is None:
            if backdrop and self._opaque:
                p.fillRect(self.view.rect_to_widget(part), self._checker)
            return
        z = self.view.zoom
        s = float(1 << level)
        p.save()
        p.translate(self.view.offset)
        p.scale(z, z)
        # Crisp pixels when magnified; smooth when the image is scaled down or coarser.
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, z < 1.0 or level > 0)
        p.drawImage(QRectF(part.x, part.y, part.w, part.h), image,
                    QRectF((part.x - rect.x) / s, (part.y - rect.y) / s, part.w / s, part.h / s))
        p.restore()

    def _draw_tiles(self, p: QPainter, cache: TileImageCache, visible: Rect,
                    budget: FrameBudget, backdrop: bool = False, waiting: bool = False) -> bool:
        """Draw the cached tiles over `visible`, building missing ones while `budget`
        allows; True if some were not built yet.

        With `backdrop`, a transparency checkerboard goes under each tile, and a
        flat placeholder stands in for a tile still waiting to be built (unless
        `waiting`: something is drawn there already, the coarse picture).
        """
        missing = False
        for rect, image, ready in cache.tiles(visible, budget):
            part = rect.intersect(visible)
            if not ready:
                missing = True
                if backdrop and not waiting:
                    p.fillRect(self.view.rect_to_widget(part), PENDING_COLOR)
                continue
            self._draw_image(p, rect, image, part, cache.level, backdrop)
        return missing

    def _draw_preview(self, p: QPainter) -> None:
        if self._preview is None:
            return
        image, rect = self._preview
        p.save()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(self.view.rect_to_widget(rect), image)
        p.restore()

    def _draw_live(self, p: QPainter) -> None:
        if self._live_area is not None:
            p.save()
            pen = QPen(QColor(80, 200, 255), 1, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.view.rect_to_widget(self._live_area))
            p.restore()
        if not self.live_overlay_shown:
            return
        image, rect = self._live  # type: ignore[misc]
        p.save()
        p.setOpacity(self._live_opacity)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(self.view.rect_to_widget(rect), image)
        p.restore()

    def _dashed_pens(self) -> tuple[QPen, QPen]:
        under = QPen(QColor(255, 255, 255), 1)
        under.setCosmetic(True)
        over = QPen(QColor(0, 0, 0), 1, Qt.PenStyle.CustomDashLine)
        over.setDashPattern([4, 4])
        over.setCosmetic(True)
        return under, over

    def _draw_selection(self, p: QPainter) -> None:
        if not self._selection:
            return
        p.save()
        p.translate(self.view.offset)
        p.scale(self.view.zoom, self.view.zoom)
        for pen in self._dashed_pens():
            p.setPen(pen)
            for poly in self._selection:
                p.drawPolygon(poly)
        p.restore()

    def _draw_frame(self, p: QPainter) -> None:
        if self._frame is None:
            return
        p.save()
        r = self.view.rect_to_widget(self._frame)
        pen = QPen(QColor(255, 170, 40), 2, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(r)
        p.restore()

    def _draw_tool_overlay(self, p: QPainter) -> None:
        shapes = self._tool.overlay() if self._tool is not None else []
        if not shapes:
            return
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for pen in self._dashed_pens():
            p.setPen(pen)
            for kind, shape in shapes:
                if kind == "rect" and isinstance(shape, Rect):
                    p.drawRect(self.view.rect_to_widget(shape))
                elif kind == "polygon":
                    p.drawPolyline(QPolygonF([self.view.to_widget(x, y) for x, y in shape]))
                elif kind == "quad":
                    p.drawPolygon(QPolygonF([self.view.to_widget(x, y) for x, y in shape]))
        for kind, shape in shapes:
            if kind == "rotate":
                top, knob = (self.view.to_widget(x, y) for x, y in shape)
                p.setPen(QPen(QColor(0, 0, 0, 200), 3))
                p.drawLine(top, knob)
                p.setPen(QPen(QColor(255, 255, 255), 1))
                p.drawLine(top, knob)
                p.setPen(QPen(QColor(0, 0, 0), 1))
                p.setBrush(QColor(255, 255, 255))
                p.drawEllipse(knob, HANDLE_PX / 2 + 1, HANDLE_PX / 2 + 1)
            elif kind == "handles":
                p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
                p.setPen(QPen(QColor(0, 0, 0), 1))
                p.setBrush(QColor(255, 255, 255))
                half = HANDLE_PX // 2
                for x, y in shape:
                    c = self.view.to_widget(x, y).toPoint()
                    p.drawRect(c.x() - half, c.y() - half, HANDLE_PX, HANDLE_PX)
                p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.restore()

    def _overlay_bounds(self) -> QRect:
        shapes = self._tool.overlay() if self._tool is not None else []
        bounds = QRect()
        for kind, shape in shapes:
            if kind == "rect" and isinstance(shape, Rect):
                bounds = bounds.united(self.view.rect_to_widget_aligned(shape, 3))
            elif kind in ("polygon", "quad", "handles", "rotate") and shape:
                pts = [self.view.to_widget(x, y) for x, y in shape]
                xs = [pt.x() for pt in pts]
                ys = [pt.y() for pt in pts]
                m = 3 if kind == "polygon" else HANDLE_PX + 4
                bounds = bounds.united(QRect(math.floor(min(xs)) - m, math.floor(min(ys)) - m,
                                             math.ceil(max(xs) - min(xs)) + 2 * m + 1,
                                             math.ceil(max(ys) - min(ys)) + 2 * m + 1))
        return bounds

    # -- the transform tool ----------------------------------------------------------------
    def _transform_tool(self) -> TransformTool | None:
        return self._tool if isinstance(self._tool, TransformTool) else None

    def unsettled_layers(self) -> dict[int, TiledSurface]:
        """Layer id -> its pixels before a pending transform lifted a piece out of it (the
        shown document only; see `TransformTool.unlifted`)."""
        tool = self._transform_tool()
        lifted = tool.unlifted() if tool is not None else None
        return {lifted[0].id: lifted[1]} if lifted is not None else {}

    def _draw_transform_preview(self, p: QPainter) -> bool:
        """Draw the floating piece (low resolution) where the transform puts it; True while
        a transform is pending."""
        tool = self._transform_tool()
        if tool is None or not tool.pending:
            return False
        preview = tool.preview()
        if preview is None:
            return True
        rgba, m, opacity = preview
        cached = self._transform_image
        if cached is None or cached[0] is not rgba:
            h, w = rgba.shape[:2]
            image, view = image_with_array(w, h, QImage.Format.Format_RGBA8888)
            view[:] = rgba
            image = image.convertToFormat(QImage.Format.Format_RGBA8888_Premultiplied)
            self._transform_image = cached = (rgba, image)
        p.save()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.translate(self.view.offset)
        p.scale(self.view.zoom, self.view.zoom)
        p.setTransform(QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]), True)
        p.setOpacity(opacity)
        p.drawImage(0, 0, cached[1])
        p.restore()
        return True

    def _transform_changed(self) -> None:
        self._sync_transform_bar()
        self._update_overlay()

    def _sync_transform_bar(self) -> None:
        tool = self._transform_tool()
        if tool is None or self._doc is None:
            if self._transform_bar is not None:
                self._transform_bar.hide()
            return
        bar = self._transform_bar
        if bar is None:
            bar = self._transform_bar = TransformBar(self)
            bar.values_entered.connect(self._transform_values)
            bar.apply_requested.connect(self.commit_transform)
            bar.cancel_requested.connect(self.cancel_transform)
        bar.show_box(tool.current_box(), tool.pending, tool.committing, tool.why_not())
        bar.show()
        bar.raise_()
        self._place_transform_bar()

    def _place_transform_bar(self) -> None:
        bar = self._transform_bar
        if bar is not None:
            bar.adjustSize()
            bar.move(max(0, (self.width() - bar.width()) // 2), 8)

    def _transform_inset(self) -> int:
        """Widget pixels at the top that the transform bar (and, below it, room for the
        rotate knob) takes while the transform tool is current; 0 otherwise."""
        bar = self._transform_bar
        if self._transform_tool() is None or bar is None or bar.isHidden():
            return 0
        return bar.geometry().bottom() + int(ROTATE_STEM_PX) + HANDLE_PX

    def _make_room_for_transform(self) -> None:
        """Move the view so the box's top handles and rotate knob are not under the bar:
        pan down when the box fits below it, else fit the picture below it."""
        tool = self._transform_tool()
        box = tool.current_box() if tool is not None else None
        if box is None or not self.isVisible():
            return
        top = self._transform_inset()
        pts = [self.view.to_widget(x, y) for x, y in box.corners()]
        y0 = min(pt.y() for pt in pts)
        y1 = max(pt.y() for pt in pts)
        if y0 >= top:
            return
        if y1 + (top - y0) <= self.height() - HANDLE_PX:
            self.pan_by(0, top - y0)
        else:
            self.fit_to_view()

    @property
    def transform_bar(self) -> TransformBar | None:
        """The numeric fields shown while the transform tool is current (tests)."""
        return self._transform_bar

    def _transform_values(self, values: dict) -> None:
        tool = self._transform_tool()
        if tool is not None:
            tool.set_values(**values)

    def _settle_transform(self) -> None:
        """Another tool or document takes over: a pending transform is applied (as Krita
        does), not lost."""
        tool = self._transform_tool()
        if tool is not None and tool.pending and not tool.committing:
            self.commit_transform()

    def commit_transform(self) -> None:
        """Apply the pending transform (Enter, Apply): one undo step. A big piece is
        resampled on a pool thread; the preview stays until the result lands."""
        tool = self._transform_tool()
        if tool is None:
            return
        if self._stroke_tool is tool:
            self._stroke_tool = None  # the drag ends where it is
        job = tool.begin_commit()
        if job is None:
            self._transform_changed()
            return
        if job.pixels < BACKGROUND_TRANSFORM_PIXELS:
            tool.finish_commit(job, job.run())
            self._transform_changed()
            return
        self._transform_jobs[id(job)] = (tool, job)
        self._update_cursor_shape()
        run_in_pool(self, lambda: (job, job.run()), self._transform_done,
                    lambda exc: self._transform_failed(f"{type(exc).__name__}: {exc}"))

    def apply_transform_now(self) -> None:
        """Apply a pending (or still resampling) transform before returning, so whatever
        comes next (a save, a click in another panel, a menu) sees the finished pixels."""
        tool = self._transform_tool()
        if tool is None or not (tool.pending or tool.committing):
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            if self._stroke_tool is tool:
                self._stroke_tool = None
            job = tool.running_job
            if job is not None:  # resample here too; the pool's result will be ignored
                self._transform_jobs.pop(id(job), None)
                tool.finish_commit(job, job.run())
            else:
                tool.commit()
        finally:
            QApplication.restoreOverrideCursor()
        self._update_cursor_shape()
        self._transform_changed()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """While a transform is pending (installed only while the transform tool is current):
        a press on another widget (a panel, the menu bar, a tab) or a Ctrl/Alt shortcut
        (Save, Export, …) applies it first, as Krita does: the pixels are never saved or
        edited with the piece lifted out of its layer."""
        kind = event.type()
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.TabletPress,
                        QEvent.Type.ShortcutOverride):
            return False
        tool = self._transform_tool()
        if tool is None or not (tool.pending or tool.committing):
            return False
        if kind == QEvent.Type.ShortcutOverride:
            if not isinstance(event, QKeyEvent) or event.matches(QKeySequence.StandardKey.Undo):
                return False
            mods = event.modifiers() & (Qt.KeyboardModifier.ControlModifier
                                        | Qt.KeyboardModifier.AltModifier
                                        | Qt.KeyboardModifier.MetaModifier)
            if mods and event.key() not in _MODIFIER_KEYS and event.key() not in (
                    Qt.Key.Key_Control, Qt.Key.Key_Meta):
                self.apply_transform_now()
            return False
        if isinstance(watched, QWidget) and not (watched is self or self.isAncestorOf(watched)):
            self.apply_transform_now()
        return False

    @property
    def transform_running(self) -> bool:
        """A transform's full-quality resample runs on a pool thread."""
        return bool(self._transform_jobs)

    @Slot(object)
    def _transform_done(self, outcome: tuple[TransformJob, TransformResult]) -> None:
        job, result = outcome
        tool, _ = self._transform_jobs.pop(id(job), (None, None))
        if tool is not None:
            tool.finish_commit(job, result)
        self._update_cursor_shape()
        self._transform_changed()

    @Slot(str)
    def _transform_failed(self, message: str) -> None:
        for tool, _job in list(self._transform_jobs.values()):
            tool.cancel()
            tool.ctx.status(f"The transform could not be applied ({message}); the pixels are as before.")
        self._transform_jobs.clear()
        self._update_cursor_shape()
        self._transform_changed()

    def cancel_transform(self) -> bool:
        """Esc, Cancel: the pixels go back as they were; nothing is recorded. True if a
        transform was pending."""
        tool = self._transform_tool()
        if tool is None or not (tool.pending or tool.committing):
            return False
        if self._stroke_tool is tool:
            self._stroke_tool = None
        for key, (t, _job) in list(self._transform_jobs.items()):
            if t is tool:
                del self._transform_jobs[key]
        tool.cancel()
        self._update_cursor_shape()
        self._transform_changed()
        return True

    def _transform_cursor(self, pos: QPointF) -> QCursor | Qt.CursorShape | None:
        tool = self._transform_tool()
        if tool is None:
            return None
        x, y = self.view.to_doc(pos)
        hit = tool.hover(x, y)
        box = tool.current_box()
        if hit is None or box is None:
            return None
        if hit == MOVE:
            return Qt.CursorShape.SizeAllCursor
        if hit == ROTATE:
            return _rotate_cursor()
        hx, hy = box.handle_point(hit)
        deg = math.degrees(math.atan2(hy - box.cy, hx - box.cx)) % 180.0
        if deg < 22.5 or deg >= 157.5:
            return Qt.CursorShape.SizeHorCursor
        if deg < 67.5:
            return Qt.CursorShape.SizeFDiagCursor
        if deg < 112.5:
            return Qt.CursorShape.SizeVerCursor
        return Qt.CursorShape.SizeBDiagCursor

    def _outline_diameter(self) -> float:
        tool = self._tool
        if tool is None or not tool.shows_brush_outline:
            return 0.0
        return tool.ctx.brush.size * self.view.zoom

    def _draw_brush_outline(self, p: QPainter) -> None:
        d = self._outline_diameter()
        if d <= 0 or self._cursor is None or self._pan_last is not None:
            return
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        c = self._cursor
        r = max(d / 2, 1.5)
        p.setPen(QPen(QColor(0, 0, 0, 200), 1.5))
        p.drawEllipse(c, r, r)
        p.setPen(QPen(QColor(255, 255, 255, 220), 1))
        p.drawEllipse(c, r - 1 if r > 2 else r, r - 1 if r > 2 else r)
        if d < 6:  # a small crosshair so tiny brushes stay findable
            p.drawLine(QPointF(c.x() - 5, c.y()), QPointF(c.x() + 5, c.y()))
            p.drawLine(QPointF(c.x(), c.y() - 5), QPointF(c.x(), c.y() + 5))
        p.restore()

    def _update_outline(self) -> None:
        """Repaint the old and new brush outline areas only."""
        old = self._outline_rect
        d = self._outline_diameter()
        if d > 0 and self._cursor is not None:
            r = int(max(d / 2, 6)) + 3
            c = self._cursor.toPoint()
            self._outline_rect = QRect(c.x() - r, c.y() - r, 2 * r + 1, 2 * r + 1)
        else:
            self._outline_rect = QRect()
        for rect in (old, self._outline_rect):
            if not rect.isEmpty():
                self.update(rect)

    def refresh_brush_outline(self) -> None:
        """The brush size changed: redraw the outline around the cursor."""
        self._update_cursor_shape()
        self._update_outline()

    def _update_overlay(self) -> None:
        old, self._overlay_rect = self._overlay_rect, self._overlay_bounds()
        for rect in (old, self._overlay_rect):
            if not rect.isEmpty():
                self.update(rect)

    def _update_cursor_shape(self) -> None:
        if self._pan_last is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space_held:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._transform_tool() is not None:
            if self._transform_jobs:
                self.setCursor(Qt.CursorShape.BusyCursor)
            else:
                self.setCursor(self._hover_cursor or Qt.CursorShape.ArrowCursor)
        elif self._outline_diameter() >= 6:
            self.setCursor(Qt.CursorShape.BlankCursor)
        else:
            self.setCursor(Qt.CursorShape.CrossCursor)

    # -- pointer input ----------------------------------------------------------------------
    def _pointer(self, pos: QPointF, pressure: float, tilt_x: float, tilt_y: float,
                 buttons: Qt.MouseButton, mods: Qt.KeyboardModifier) -> PointerEvent:
        x, y = self.view.to_doc(pos)
        return PointerEvent(x, y, float(pressure), float(tilt_x), float(tilt_y),
                            _buttons(buttons), _modifiers(mods))

    def _track_cursor(self, pos: QPointF) -> None:
        self._cursor = QPointF(pos)
        x, y = self.view.to_doc(pos)
        self.cursor_moved.emit(x, y)
        self._update_outline()

    def _start_pan(self, pos: QPointF) -> None:
        self._pan_last = QPointF(pos)
        self._update_cursor_shape()
        self._update_outline()

    def _pan_to(self, pos: QPointF) -> None:
        assert self._pan_last is not None
        d = pos - self._pan_last
        self._pan_last = QPointF(pos)
        self.pan_by(d.x(), d.y())

    def _end_pan(self) -> None:
        self._pan_last = None
        self._update_cursor_shape()
        self._update_outline()

    @property
    def _stroking(self) -> bool:
        return self._stroke_tool is not None

    def _press(self, ev: PointerEvent, tool: Tool | None = None) -> None:
        tool = tool or self._tool
        if tool is None or self._doc is None:
            return
        self._stroke_tool = tool
        tool.press(ev)
        self._update_overlay()
        if self._live is not None:  # the live frame steps aside while painting under it
            self.update(self.view.rect_to_widget_aligned(self._live[1], 4))

    def _move(self, ev: PointerEvent) -> None:
        if self._stroke_tool is not None:
            self._last_pointer = ev
            self._stroke_tool.move(ev)
            self._update_overlay()

    def _modifiers_changed(self, mods: Qt.KeyboardModifier) -> None:
        """Shift / Alt pressed or let go mid-drag: the transform follows at once (keep the
        aspect, scale from the centre, snap), without waiting for the pointer to move."""
        ev = self._last_pointer
        tool = self._transform_tool()
        if tool is not None and self._stroke_tool is tool and ev is not None:
            self._move(PointerEvent(ev.x, ev.y, ev.pressure, ev.tilt_x, ev.tilt_y, ev.buttons,
                                    _modifiers(mods)))

    def _nudge(self, key: int, mods: Qt.KeyboardModifier) -> bool:
        """Arrow keys move the transform by a pixel (Shift: ten)."""
        tool = self._transform_tool()
        steps = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1),
                 Qt.Key.Key_Down: (0, 1)}
        if tool is None or key not in steps or self._stroke_tool is not None:
            return False
        box = tool.current_box()
        if box is None:
            return False
        n = 10 if mods & Qt.KeyboardModifier.ShiftModifier else 1
        dx, dy = steps[key]  # type: ignore[index]
        tool.set_values(x=box.left + dx * n, y=box.top + dy * n)
        return True

    def _release(self, ev: PointerEvent) -> None:
        tool, self._stroke_tool = self._stroke_tool, None
        if tool is not None:
            tool.release(ev)
            self._update_overlay()
            if self._live is not None:
                self.update(self.view.rect_to_widget_aligned(self._live[1], 4))
            self.stroke_finished.emit()

    def _finish_stroke(self, cancel: bool) -> None:
        tool, self._stroke_tool = self._stroke_tool, None
        if tool is not None:
            if cancel:
                tool.cancel()
            self._update_overlay()
            if self._live is not None:
                self.update(self.view.rect_to_widget_aligned(self._live[1], 4))
            self.stroke_finished.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = event.position()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and self._space_held):
            self._start_pan(pos)
        elif button == Qt.MouseButton.LeftButton and not self._stroking:
            self._press(self._pointer(pos, 1.0, 0, 0, event.buttons(), event.modifiers()))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_last is not None:
            self._pan_to(pos)
        elif self._stroking:
            self._move(self._pointer(pos, 1.0, 0, 0, event.buttons() | Qt.MouseButton.LeftButton,
                                     event.modifiers()))
        elif self._transform_tool() is not None and not self._space_held:
            cursor = self._transform_cursor(pos)
            if cursor != self._hover_cursor:
                self._hover_cursor = cursor
                self._update_cursor_shape()
        self._track_cursor(pos)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_last is not None and event.button() in (
                Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._end_pan()
        elif event.button() == Qt.MouseButton.LeftButton:
            self._release(self._pointer(pos, 1.0, 0, 0, Qt.MouseButton.LeftButton,
                                        event.modifiers()))
        event.accept()

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        """Pen input: pressure and tilt go to the tool; accepting stops the synthesized mouse event."""
        pos = event.position()
        kind = event.type()
        pe = self._pointer(pos, event.pressure(), event.xTilt(), event.yTilt(),
                           event.buttons() | event.button(), event.modifiers())
        if kind == QEvent.Type.TabletPress:
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            if self._space_held or event.button() == Qt.MouseButton.MiddleButton:
                self._start_pan(pos)
            elif event.button() == Qt.MouseButton.LeftButton and not self._stroking:
                tool = None
                eraser_end = event.pointerType() == QPointingDevice.PointerType.Eraser
                if eraser_end and self.eraser_for is not None and self._tool is not None:
                    tool = self.eraser_for(self._tool)
                self._press(pe, tool)
        elif kind == QEvent.Type.TabletMove:
            if self._pan_last is not None:
                self._pan_to(pos)
            elif self._stroking:
                self._move(pe)
            self._track_cursor(pos)
        elif kind == QEvent.Type.TabletRelease:
            if self._pan_last is not None:
                self._end_pan()
            elif event.button() == Qt.MouseButton.LeftButton:
                self._release(pe)
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """Wheel (with or without Ctrl) zooms around the cursor."""
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            event.ignore()
            return
        self.set_zoom(self.view.zoom * 2.0 ** (delta / 480.0), event.position())
        event.accept()

    def enterEvent(self, event: QEvent) -> None:  # noqa: N802
        # Take keyboard focus on hover (space-pan, Esc) unless someone is typing.
        focus = QApplication.focusWidget()
        if not isinstance(focus, (QLineEdit, QAbstractSpinBox)):
            self.setFocus(Qt.FocusReason.OtherFocusReason)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self._cursor = None
        self._update_outline()
        self.cursor_left.emit()
        super().leaveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_held = True
                self._update_cursor_shape()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape:
            self._finish_stroke(cancel=True)
            self.cancel_transform()
            event.accept()
            return
        tool = self._transform_tool()
        if tool is not None:
            if event.key() in _MODIFIER_KEYS:
                self._modifiers_changed(event.modifiers() | _MODIFIER_KEYS[event.key()])
            if self._nudge(event.key(), event.modifiers()):
                event.accept()
                return
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.commit_transform()
                event.accept()
                return
            if event.matches(QKeySequence.StandardKey.Undo) and tool.pending:
                if self._stroke_tool is tool:
                    self._stroke_tool = None
                tool.step_back()
                event.accept()
                return
        super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        # While a transform is pending, Esc / Enter / Ctrl+Z over the canvas belong to it,
        # not to the window's shortcuts (Esc cancels a generation, Ctrl+Z undoes).
        if event.type() == QEvent.Type.ShortcutOverride:
            tool = self._transform_tool()
            busy = tool is not None and (tool.pending or tool.committing)
            if busy and isinstance(event, QKeyEvent) and (
                    event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter)
                    or event.matches(QKeySequence.StandardKey.Undo)):
                event.accept()
                return True
        return super().event(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in _MODIFIER_KEYS:  # (platforms differ on whether the key is still in)
            self._modifiers_changed(event.modifiers() & ~_MODIFIER_KEYS[event.key()])
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_held = False
                if self._pan_last is not None:
                    self._end_pan()
                self._update_cursor_shape()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt API
        return False  # Tab belongs to "hide panels", not to the focus chain

    def focusOutEvent(self, event: QEvent) -> None:  # noqa: N802
        self._space_held = False
        self._update_cursor_shape()
        super().focusOutEvent(event)

    # -- geometry ------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        if self._fit_pending and self._doc is not None:
            self.fit_to_view()
        else:
            # keep the same doc point at the centre
            old, new = event.oldSize(), event.size()
            if old.isValid():
                self.view.pan((new.width() - old.width()) / 2, (new.height() - old.height()) / 2)
        self._place_transform_bar()
        super().resizeEvent(event)

    def showEvent(self, event: QEvent) -> None:  # noqa: N802
        if self._fit_pending:
            self.fit_to_view()
        super().showEvent(event)


_ROTATE_CURSOR: QCursor | None = None


def _rotate_cursor() -> QCursor:
    """A curved double arrow (Qt has no rotate cursor), white with a dark outline."""
    global _ROTATE_CURSOR
    if _ROTATE_CURSOR is None:
        pm = QPixmap(24, 24)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for colour, width in ((QColor(0, 0, 0), 3.5), (QColor(255, 255, 255), 1.5)):
            pen = QPen(colour, width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            p.drawArc(QRectF(5, 5, 14, 14), 20 * 16, 230 * 16)
            p.drawPolyline(QPolygonF([QPointF(15.5, 3.0), QPointF(18.6, 7.0), QPointF(13.8, 8.2)]))
            p.drawPolyline(QPolygonF([QPointF(2.6, 13.0), QPointF(5.6, 16.6), QPointF(8.6, 13.0)]))
        p.end()
        _ROTATE_CURSOR = QCursor(pm, 12, 12)
    return _ROTATE_CURSOR
