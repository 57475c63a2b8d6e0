"""Canvas widget: pointer input lands on the right pixels, view mapping, pan, zoom, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QInputDevice, QPointingDevice, QTabletEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.base import BrushSettings, ToolContext
from canvasai.tools.registry import make_tools
from canvasai.ui.canvas_widget import CanvasWidget
from canvasai.ui.tile_cache import FrameBudget, TileImageCache
from canvasai.ui.view import ViewTransform

NO_MOD = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def setup(qtbot):
    doc = Document(200, 150, background=None)
    comp = Compositor(doc)
    ctx = ToolContext(doc, comp, brush=BrushSettings(size=6, hardness=1.0), foreground=(255, 0, 0))
    tools = make_tools(ctx)
    canvas = CanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(400, 300)
    canvas.set_document(doc, comp)
    canvas.set_tool(tools["brush"])
    canvas.show()
    qtbot.waitExposed(canvas)
    return canvas, doc, tools


def layer_alpha(doc: Document) -> np.ndarray:
    return doc.active_layer.surface.read(doc.rect)[..., 3]


def widget_point(canvas: CanvasWidget, x: float, y: float) -> QPoint:
    return canvas.map_from_doc(x, y).toPoint()


@pytest.mark.parametrize("zoom, pan", [(1.0, (0, 0)), (0.5, (30, -10)), (4.0, (-250, -150)),
                                       (2.5, (17, 9))])
def test_mouse_stroke_paints_at_mapped_position(setup, qtbot, zoom, pan):
    canvas, doc, _ = setup
    canvas.set_zoom(zoom)
    canvas.pan_by(*pan)
    target = (60.5, 40.5)
    end = (90.5, 40.5)
    if zoom == 4.0:  # keep both points inside the zoomed view
        target, end = (120.5, 90.5), (130.5, 90.5)
    p0, p1 = widget_point(canvas, *target), widget_point(canvas, *end)
    assert canvas.rect().contains(p0) and canvas.rect().contains(p1)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p0)
    qtbot.mouseMove(canvas, QPoint((p0.x() + p1.x()) // 2, p0.y()))
    qtbot.mouseMove(canvas, p1)
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p1)
    alpha = layer_alpha(doc)
    tx, ty = canvas.map_to_doc(QPointF(p0))
    ex, _ = canvas.map_to_doc(QPointF(p1))
    assert alpha[int(ty), int(tx)] == 255
    assert alpha[int(ty), int((tx + ex) / 2)] == 255
    assert alpha[int(ty), int(ex)] == 255
    ys, xs = np.nonzero(alpha)
    # nothing far from the stroke (brush radius 3 + anti-aliasing)
    assert ys.min() >= int(ty) - 5 and ys.max() <= int(ty) + 5
    assert xs.min() >= int(tx) - 5 and xs.max() <= int(ex) + 5
    assert doc.history.entries == ["Brush stroke"]


def _tablet(canvas, kind, pos: QPointF, pressure: float):
    dev = QPointingDevice("test pen", 42, QInputDevice.DeviceType.Stylus,
                          QPointingDevice.PointerType.Pen,
                          QInputDevice.Capability.Position | QInputDevice.Capability.Pressure,
                          1, 3)
    buttons = LEFT if kind != QEvent.Type.TabletRelease else Qt.MouseButton.NoButton
    ev = QTabletEvent(kind, dev, pos, canvas.mapToGlobal(pos), pressure, 0.0, 0.0, 0.0, 0.0, 0.0,
                      NO_MOD, LEFT, buttons)
    QApplication.sendEvent(canvas, ev)
    return ev


def test_tablet_pressure_makes_smaller_lighter_dabs(setup):
    canvas, doc, tools = setup
    tools["brush"].ctx.brush.size = 20
    tools["brush"].ctx.brush.hardness = 0.5
    light = QPointF(canvas.map_from_doc(50, 75))
    heavy = QPointF(canvas.map_from_doc(150, 75))
    ev = _tablet(canvas, QEvent.Type.TabletPress, light, 0.3)
    assert ev.isAccepted()
    _tablet(canvas, QEvent.Type.TabletRelease, light, 0.3)
    _tablet(canvas, QEvent.Type.TabletPress, heavy, 1.0)
    _tablet(canvas, QEvent.Type.TabletRelease, heavy, 1.0)
    alpha = layer_alpha(doc)
    left, right = alpha[:, :100], alpha[:, 100:]
    assert 0 < np.count_nonzero(left) < np.count_nonzero(right)
    assert left.max() < right.max()
    assert len(doc.history.entries) == 2


def test_view_mapping_round_trips():
    for zoom in (1 / 64, 0.33, 1.0, 3.7, 64.0):
        v = ViewTransform(zoom, QPointF(13.25, -40.5))
        for x, y in ((0, 0), (123.5, 77.25), (-20, 4000)):
            wx = v.to_widget(x, y)
            assert v.to_doc(wx) == pytest.approx((x, y))
        r = Rect(10, 20, 30, 40)
        back = v.widget_rect_to_doc(v.rect_to_widget(r))
        assert back.contains(r)


def test_space_drag_pans_without_painting(setup, qtbot):
    canvas, doc, _ = setup
    before = QPointF(canvas.view.offset)
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas, LEFT, NO_MOD, QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(130, 120))
    qtbot.mouseMove(canvas, QPoint(160, 90))
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, QPoint(160, 90))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.view.offset - before == QPointF(60, -10)
    assert doc.history.entries == []
    assert not layer_alpha(doc).any()


def test_middle_button_pans(setup, qtbot):
    canvas, doc, _ = setup
    before = QPointF(canvas.view.offset)
    mid = Qt.MouseButton.MiddleButton
    qtbot.mousePress(canvas, mid, NO_MOD, QPoint(50, 50))
    qtbot.mouseMove(canvas, QPoint(20, 70))
    qtbot.mouseRelease(canvas, mid, NO_MOD, QPoint(20, 70))
    assert canvas.view.offset - before == QPointF(-30, 20)
    assert doc.history.entries == []


@pytest.mark.parametrize("mods", [NO_MOD, Qt.KeyboardModifier.ControlModifier])
def test_wheel_zooms_around_cursor(setup, mods):
    canvas, _, _ = setup
    pos = QPointF(123, 87)
    doc_before = canvas.map_to_doc(pos)
    zoom_before = canvas.zoom
    ev = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                     mods, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, ev)
    assert canvas.zoom > zoom_before
    assert canvas.map_to_doc(pos) == pytest.approx(doc_before)
    ev = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(), QPoint(0, -480),
                     Qt.MouseButton.NoButton, mods, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, ev)
    assert canvas.zoom < zoom_before
    assert canvas.map_to_doc(pos) == pytest.approx(doc_before)


def test_zoom_steps_and_fit(setup):
    canvas, doc, _ = setup
    canvas.fit_to_view()
    fit = canvas.zoom
    r = canvas.view.rect_to_widget(doc.rect)
    assert QPointF(canvas.rect().center()).x() == pytest.approx(r.center().x(), abs=1)
    assert r.width() <= canvas.width() and r.height() <= canvas.height()
    canvas.zoom_in()
    assert canvas.zoom > fit
    canvas.actual_pixels()
    assert canvas.zoom == 1.0
    canvas.zoom_out()
    assert canvas.zoom < 1.0


def _grab_pixel(canvas: CanvasWidget, x: float, y: float):
    QApplication.processEvents()
    img = canvas.grab().toImage()
    return img.pixelColor(canvas.map_from_doc(x, y).toPoint())


def test_mask_shows_as_red_tint_and_can_be_hidden(setup):
    canvas, doc, tools = setup
    canvas.set_tool(tools["mask_brush"])
    tools["mask_brush"].ctx.brush.size = 30
    from canvasai.tools.base import PointerEvent

    t = tools["mask_brush"]
    t.press(PointerEvent(100, 75))
    t.release(PointerEvent(100, 75))
    c = _grab_pixel(canvas, 100, 75)
    assert c.red() > c.green() + 60 and c.red() > c.blue() + 60
    canvas.set_mask_visible(False)
    c = _grab_pixel(canvas, 100, 75)
    assert abs(c.red() - c.green()) < 10  # back to the grey checkerboard


def test_preview_and_frame_overlays(setup):
    canvas, doc, _ = setup
    canvas.fit_to_view()
    green = np.zeros((10, 10, 4), np.uint8)
    green[..., 1] = 255
    green[..., 3] = 255
    canvas.set_preview(green, Rect(20, 20, 40, 40))  # scaled up 4x
    c = _grab_pixel(canvas, 40, 40)
    assert (c.red(), c.green(), c.blue()) == (0, 255, 0)
    canvas.set_preview(None)
    c = _grab_pixel(canvas, 40, 40)
    assert c.green() < 230
    assert doc.history.entries == []  # overlays never touch the document

    canvas.set_frame_rect(Rect(-20, -10, 240, 170))
    assert canvas.frame_rect == Rect(-20, -10, 240, 170)
    tl = canvas.map_from_doc(-20, -10).toPoint()
    img = canvas.grab().toImage()
    c = img.pixelColor(tl.x() + 3, tl.y())
    assert c.red() > 200 and 120 < c.green() < 210 and c.blue() < 100
    canvas.set_frame_rect(None)
    assert canvas.frame_rect is None


def test_selection_outline_and_tool_overlay_drawn(setup, qtbot):
    canvas, doc, tools = setup
    canvas.set_tool(tools["rect_select"])
    canvas.set_zoom(1.0)
    p0, p1 = widget_point(canvas, 20, 20), widget_point(canvas, 80, 60)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p0)
    qtbot.mouseMove(canvas, p1)
    assert tools["rect_select"].overlay()  # rubber band while dragging
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p1)
    assert doc.selection is not None
    img = canvas.grab().toImage()
    edge = [img.pixelColor(widget_point(canvas, 20, y)) for y in range(25, 55)]
    # the dashed outline alternates black and white along the edge
    assert any(c.lightness() < 40 for c in edge) and any(c.lightness() > 230 for c in edge)


def test_document_events_repaint_only_dirty_tiles():
    calls: list[Rect] = []

    def render(r: Rect) -> np.ndarray:
        calls.append(r)
        return np.zeros((r.h, r.w, 4), np.uint8)

    cache = TileImageCache(render, Rect(0, 0, 1000, 600), tile_size=256)
    list(cache.tiles(Rect(0, 0, 1000, 600)))
    assert len(calls) == 4 * 3
    calls.clear()
    cache.invalidate(Rect(250, 10, 20, 5))  # straddles two tiles
    cache.invalidate(Rect(252, 12, 3, 3))  # coalesces with the first
    list(cache.tiles(Rect(0, 0, 1000, 600)))
    # one render for the dirty parts of both tiles (a dab across a border is composited once)
    assert [(r.x, r.y, r.w, r.h) for r in calls] == [(250, 10, 20, 5)]
    calls.clear()
    cache.invalidate(Rect(10, 10, 5, 5))
    cache.invalidate(Rect(900, 500, 5, 5))  # far apart: rendered one by one
    list(cache.tiles(Rect(0, 0, 1000, 600)))
    assert sorted((r.x, r.y, r.w, r.h) for r in calls) == [(10, 10, 5, 5), (900, 500, 5, 5)]


def test_tile_building_is_time_budgeted():
    cache = TileImageCache(lambda r: np.zeros((r.h, r.w, 4), np.uint8), Rect(0, 0, 4096, 4096),
                           tile_size=256)
    first = list(cache.tiles(Rect(0, 0, 4096, 4096), 0.0))
    ready = [t for t in first if t[2]]
    assert 1 <= len(ready) < len(first)  # the rest is left for the next frames
    assert all(t[2] for t in cache.tiles(Rect(0, 0, 4096, 4096)))


def test_one_frame_budget_is_shared_and_a_tile_built_in_steps_loses_none():
    """Caches drawn in one paint share its budget: spent, the next cache waits (past the
    one step every frame makes); a tile built over several frames goes on where it left."""
    steps_run: list[Rect] = []

    def steps(r: Rect):
        for _ in range(3):  # three layers
            steps_run.append(r)
            yield
        return np.full((r.h, r.w, 4), 7, np.uint8)

    bounds = Rect(0, 0, 512, 256)
    a, b = (TileImageCache(lambda r: None, bounds, tile_size=256, steps=steps) for _ in "ab")
    frame = FrameBudget(0.0)
    assert a.build(bounds, frame) == ([], False) and a.building
    assert b.build(bounds, frame) == ([], False) and not b.building  # the frame's time is spent
    assert len(steps_run) == 1
    assert list(b.tiles(bounds, FrameBudget(0.0, progress=False))) == [
        (Rect(0, 0, 256, 256), None, False), (Rect(256, 0, 256, 256), None, False)]
    frames, built = 1, []
    while True:
        more, done = a.build(bounds, FrameBudget(0.0))
        frames, built = frames + 1, built + more
        if done:
            break
    assert built == [Rect(0, 0, 256, 256), Rect(256, 0, 256, 256)]
    assert len(steps_run) == 6  # 2 tiles x 3 layers: no step was run twice
    assert frames == 8  # one step per frame (the fourth returns the pixels)
    assert all(ready for _r, _img, ready in a.tiles(bounds, 0.0)) and not a.building


def test_selection_outline_follows_pixel_corners(qtbot):
    from canvasai.document.selection import select_rect
    from canvasai.ui.overlays import selection_outline

    doc = Document(300, 200)
    assert selection_outline(doc) == []
    select_rect(doc, Rect(10, 20, 50, 30))
    (poly,) = selection_outline(doc)
    corners = {(p.x(), p.y()) for p in poly}
    assert corners == {(10, 20), (60, 20), (60, 50), (10, 50)}


def test_fit_shows_the_whole_outpaint_frame(qtbot):
    from canvasai.core.geometry import Rect
    from canvasai.document.compositing import Compositor
    from canvasai.document.document import Document
    from canvasai.ui.canvas_widget import CanvasWidget

    canvas = CanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(400, 300)
    doc = Document(200, 100)
    canvas.set_document(doc, Compositor(doc))
    canvas.set_frame_rect(Rect(-100, 0, 400, 150))
    canvas.fit_to_view()
    for x, y in ((-100, 0), (300, 150)):
        p = canvas.map_from_doc(x, y)
        assert 0 <= p.x() <= 400 and 0 <= p.y() <= 300


def _big_doc(side: int = 2048) -> Document:
    from canvasai.document.blend import BlendMode
    from canvasai.document.stroke import Stroke

    doc = Document(side, side)
    rng = np.random.default_rng(0)
    for mode in (BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.OVERLAY):
        layer = doc.add_layer()
        doc.set_layer_properties(layer, blend_mode=mode)
        s = Stroke(layer.surface, doc.rect, color=tuple(int(c) for c in rng.integers(0, 255, 3)))
        for x in range(100, side - 100, 200):
            s.dab(float(x), side / 2 + float(rng.uniform(-300, 300)), 120.0, 0.5)
        s.finish()
    doc.history.clear()
    return doc


def test_zoomed_out_views_come_from_reduced_levels_never_full_resolution(qtbot):
    """Fit-to-window on a big document: the first paint is a complete (coarse) picture,
    refinement builds the zoom's own level in later frames, and no paint composites the
    full-resolution document."""
    from canvasai.ui.view import detail_level

    doc = _big_doc()
    comp = Compositor(doc)
    full_res: list[Rect] = []
    display = comp.display
    comp.display = lambda r: full_res.append(r) or display(r)
    canvas = _settled_canvas(qtbot, doc, comp)
    qtbot.waitUntil(lambda: canvas.picture_complete, timeout=5000)
    level = detail_level(canvas.zoom)
    assert level >= 2
    qtbot.waitUntil(lambda: not canvas.refining, timeout=20000)
    assert full_res == []
    # what is on screen is the composite, sampled: compare a pixel in the painted band
    img = canvas.grab().toImage()
    c = canvas.map_from_doc(1024, 1024).toPoint()
    shown = img.pixelColor(c)
    ref = comp.display(Rect(1016, 1016, 16, 16)).reshape(-1, 4).mean(axis=0)
    assert abs(shown.red() - ref[0]) < 40 and abs(shown.green() - ref[1]) < 40


def _image_array(image) -> np.ndarray:
    image = image.convertToFormat(image.Format.Format_RGBA8888_Premultiplied)
    w, h = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(h, image.bytesPerLine() // 4, 4)
    return rows[:, :w].copy()  # (the image, a temporary, goes away)


def _settled_canvas(qtbot, doc: Document, comp: Compositor, size=(400, 300)) -> CanvasWidget:
    canvas = CanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(*size)
    canvas.set_document(doc, comp)
    canvas.show()
    qtbot.waitExposed(canvas)
    return canvas


def test_a_big_document_is_drawn_placeholder_then_coarse_then_sharp_a_step_per_frame(
        qtbot, monkeypatch):
    """After a big change (a new or upscaled document) no paint builds past its budget:
    the first picture is the placeholder, building frames (one step each here) make the
    coarse picture, then the sharp one, and the end result is the composite."""
    import canvasai.ui.canvas_widget as cw

    monkeypatch.setattr(cw, "BUILD_SECONDS_PER_PAINT", 0.0)  # every frame: one step
    monkeypatch.setattr(cw, "BUILD_FRAME_INTERVAL_MS", 60_000)  # frames on demand, below
    doc = _big_doc()
    comp = Compositor(doc)
    canvas = _settled_canvas(qtbot, doc, comp)
    level = canvas.detail_level()
    visible = canvas.view.widget_rect_to_doc(canvas.rect()).intersect(doc.rect)
    centre = canvas.map_from_doc(1024, 1024).toPoint()

    def shown():
        return canvas.grab().toImage().pixelColor(centre)

    assert shown() == cw.PENDING_COLOR  # a paint draws with the time its budget leaves
    assert canvas.refining
    sharp, coarse = canvas._levels[level], canvas._previews[level + cw.PREVIEW_LEVELS]
    frames = 0
    while coarse.missing(visible):
        canvas._build_more()
        frames += 1
    assert frames >= len(doc.layers)  # one layer per frame
    assert sharp.missing(visible)  # the coarse picture came first, and stands in
    assert shown() != cw.PENDING_COLOR
    monkeypatch.setattr(cw, "BUILD_FRAME_INTERVAL_MS", 8)
    canvas._build_more()  # (the next frames come from the canvas's timer)
    qtbot.waitUntil(lambda: not canvas.refining, timeout=30000)
    assert not sharp.missing(visible)
    for rect, image, ready in sharp.tiles(visible):
        assert ready
        assert np.array_equal(_image_array(image), comp.display_level(rect, level))
    # the same picture as a canvas that built it with the usual budget
    monkeypatch.setattr(cw, "BUILD_SECONDS_PER_PAINT", 0.012)
    other = _settled_canvas(qtbot, doc, Compositor(doc))
    qtbot.waitUntil(lambda: not other.refining, timeout=30000)
    assert np.array_equal(_image_array(canvas.grab().toImage()),
                          _image_array(other.grab().toImage()))


def test_painting_while_zoomed_out_refreshes_the_reduced_level(qtbot):
    doc = Document(1024, 1024, background=(255, 255, 255, 255))
    comp = Compositor(doc)
    ctx = ToolContext(doc, comp, brush=BrushSettings(size=80, hardness=1.0), foreground=(0, 0, 255))
    canvas = CanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.set_document(doc, comp)
    canvas.set_tool(make_tools(ctx)["brush"])
    canvas.show()
    qtbot.waitExposed(canvas)
    qtbot.waitUntil(lambda: not canvas.refining, timeout=10000)
    assert canvas.zoom < 0.4
    p = widget_point(canvas, 512, 512)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p)
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p)
    canvas.repaint()
    px = canvas.grab().toImage().pixelColor(p)
    assert px.blue() > 200 and px.red() < 60


# -- the transform tool -------------------------------------------------------------------
BLOCK = Rect(40, 30, 60, 40)  # left half blue, right half red


def _transform_setup(qtbot, size=(200, 150), block=BLOCK):
    doc = Document(*size)  # white background + "Layer 1"
    comp = Compositor(doc)
    px = np.zeros((block.h, block.w, 4), np.uint8)
    px[...] = (200, 30, 30, 255)
    px[:, : block.w // 2] = (30, 30, 200, 255)  # left half blue, right half red
    doc.active_layer.surface.write(block.x, block.y, px)
    doc.history.clear()
    tools = make_tools(ToolContext(doc, comp))
    canvas = CanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(500, 400)
    canvas.set_document(doc, comp)
    canvas.set_tool(tools["transform"])
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_zoom(2.0)
    canvas.view.offset = QPointF(20, 60)  # doc (0, 0) at widget (20, 60)
    canvas._view_changed()
    return canvas, doc, tools["transform"]


def _layer_bytes(doc):
    return doc.active_layer.surface.read(doc.rect.adjusted(200, 200, 200, 200))


def test_dragging_a_transform_handle_and_enter_commits_one_step(qtbot):
    canvas, doc, tool = _transform_setup(qtbot)
    before = _layer_bytes(doc)
    bar = canvas.transform_bar
    assert bar is not None and bar.isVisible() and bar.w.value() == 60  # before any drag
    assert not bar.apply_button.isEnabled()
    # drag the east handle 40 doc px to the right (80 screen px at 200 %)
    p0 = widget_point(canvas, 100, 50)
    p1 = widget_point(canvas, 140, 50)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p0)
    qtbot.mouseMove(canvas, widget_point(canvas, 120, 50))
    qtbot.mouseMove(canvas, p1)
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p1)
    assert tool.pending and tool.box.width == pytest.approx(100)
    assert bar.w.value() == pytest.approx(100) and bar.apply_button.isEnabled()
    assert doc.history.entries == []
    # the low-resolution preview shows the stretched piece; the original place shows the hole
    c = _grab_pixel(canvas, 130, 50)
    assert c.red() > 150 and c.blue() < 80
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert not tool.pending and doc.history.entries == ["Transform “Layer 1”"]
    assert doc.active_layer.surface.bounds() == Rect(40, 30, 100, 40)
    doc.undo()
    assert np.array_equal(_layer_bytes(doc), before)


def test_esc_cancels_a_transform_and_leaves_the_pixels(qtbot):
    canvas, doc, tool = _transform_setup(qtbot)
    before = _layer_bytes(doc)
    p0, p1 = widget_point(canvas, 70, 50), widget_point(canvas, 130, 90)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p0)  # inside: move
    qtbot.mouseMove(canvas, p1)
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p1)
    assert tool.box.integer_offset() == (60, 40)
    c = _grab_pixel(canvas, 55, 50)  # the old place of the blue half: white background now
    assert c.red() > 240 and c.blue() > 240 and c.green() > 240
    c = _grab_pixel(canvas, 115, 90)  # the preview, moved
    assert c.blue() > 150 and c.red() < 80
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert not tool.pending and doc.history.entries == []
    assert np.array_equal(_layer_bytes(doc), before)
    c = _grab_pixel(canvas, 55, 50)
    assert c.blue() > 150 and c.red() < 80


def test_transform_numeric_entry_ctrl_z_steps_and_apply_button(qtbot):
    canvas, doc, tool = _transform_setup(qtbot)
    bar = canvas.transform_bar
    bar.angle.setValue(90)
    assert tool.pending and tool.box.angle == 90
    bar.unit.setCurrentIndex(1)  # per cent
    assert bar.w.value() == pytest.approx(100)
    bar.w.setValue(50)
    assert tool.box.width == pytest.approx(30)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # steps back
    assert tool.box.width == pytest.approx(60) and tool.box.angle == 90
    bar.x.setValue(0)
    bar.y.setValue(0)
    qtbot.mouseClick(bar.apply_button, LEFT)
    assert doc.history.entries == ["Transform “Layer 1”"]
    b = doc.active_layer.surface.bounds()
    assert (b.w, b.h) == (40, 60)  # turned a quarter: 40 wide, 60 high
    # the handles now frame the result
    assert tool.current_box().source == b


def test_switching_tool_applies_a_pending_transform(qtbot):
    canvas, doc, tool = _transform_setup(qtbot)
    tool.set_values(x=10, y=10)
    canvas.set_tool(None)
    assert not tool.pending and doc.history.entries == ["Transform “Layer 1”"]
    assert canvas.transform_bar is not None and not canvas.transform_bar.isVisible()
    assert doc.active_layer.surface.bounds() == Rect(10, 10, 60, 40)


def test_a_big_transform_resamples_off_the_gui_thread(qtbot):
    from PySide6.QtCore import QThread

    canvas, doc, tool = _transform_setup(qtbot, size=(900, 800), block=Rect(0, 0, 900, 800))
    before = _layer_bytes(doc)
    tool.set_values(angle=10)
    threads = []
    finish = tool.finish_commit
    tool.finish_commit = lambda job, result: (threads.append(QThread.currentThread()),
                                              finish(job, result))
    run = tool.begin_commit  # the job's run() goes to the pool; record where it runs

    def begin():
        job = run()
        original = job.run
        job.run = lambda: (threads.append(QThread.currentThread()), original())[1]
        return job

    tool.begin_commit = begin
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert canvas.transform_running or doc.history.entries  # (a fast pool may be done)
    qtbot.waitUntil(lambda: not canvas.transform_running and bool(doc.history.entries),
                    timeout=20000)
    gui = QApplication.instance().thread()
    assert threads[0] is not gui and threads[-1] is gui  # resample on the pool, write on the GUI
    assert doc.history.entries == ["Transform “Layer 1”"]
    doc.undo()
    assert np.array_equal(_layer_bytes(doc), before)


def test_the_transform_bar_never_covers_the_top_handles(qtbot):
    doc = Document(300, 600)  # tall: fitted, its top edge would sit under the bar
    doc.active_layer.surface.write(0, 0, np.full((600, 300, 4), 200, np.uint8))
    comp = Compositor(doc)
    tools = make_tools(ToolContext(doc, comp))
    canvas = _settled_canvas(qtbot, doc, comp, size=(600, 400))
    canvas.fit_to_view()
    assert canvas.map_from_doc(0, 0).y() < 30
    canvas.set_tool(tools["transform"])
    bar = canvas.transform_bar.geometry()
    box = tools["transform"].current_box()
    _, knob = box.rotate_knob(tools["transform"].pixel_size)
    assert canvas.map_from_doc(*knob).y() > bar.bottom()
    assert canvas.map_from_doc(*box.handle_point("s")).y() < canvas.height()


def test_shift_mid_drag_keeps_the_aspect_at_once_and_arrows_nudge(qtbot):
    canvas, doc, tool = _transform_setup(qtbot)  # the box is 60 x 40
    p0 = widget_point(canvas, 100, 70)  # the south-east corner
    p1 = widget_point(canvas, 160, 80)
    qtbot.mousePress(canvas, LEFT, NO_MOD, p0)
    qtbot.mouseMove(canvas, p1)
    assert tool.box.width / tool.box.height != pytest.approx(1.5)
    qtbot.keyPress(canvas, Qt.Key.Key_Shift)  # no pointer motion: the box follows the key
    assert tool.box.width / tool.box.height == pytest.approx(1.5)
    qtbot.keyRelease(canvas, Qt.Key.Key_Shift)
    assert tool.box.width / tool.box.height != pytest.approx(1.5)
    qtbot.mouseRelease(canvas, LEFT, NO_MOD, p1)
    left, top = tool.box.left, tool.box.top
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert (tool.box.left, tool.box.top) == (left + 1, top + 10)
    assert canvas.cancel_stroke() and not tool.pending  # (Undo asks the canvas first)
    assert doc.history.entries == []


def test_undo_in_the_window_cancels_a_pending_transform_and_stops_there(qtbot):
    from canvasai.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    doc = Document(100, 80)
    doc.active_layer.surface.write(10, 10, np.full((20, 20, 4), 255, np.uint8))
    window.set_document(doc)
    doc.write_pixels(doc.active_layer, 50, 50, np.full((5, 5, 4), 200, np.uint8), "Earlier step")
    window.select_tool("transform")
    tool = window.tools["transform"]
    tool.set_values(angle=30)
    window.undo()
    assert not tool.pending and doc.history.entries == ["Earlier step"]
    window.undo()
    assert doc.history.entries == []


def test_a_click_elsewhere_or_a_shortcut_applies_a_pending_transform_first(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

    canvas, doc, tool = _transform_setup(qtbot)
    host = QWidget()
    qtbot.addWidget(host)
    other = QPushButton("Layers", host)
    QHBoxLayout(host).addWidget(other)
    host.show()
    qtbot.waitExposed(host)
    tool.set_values(x=0, y=0)
    qtbot.mouseClick(canvas.transform_bar.x, LEFT)  # the bar is part of the transform
    assert tool.pending
    qtbot.mouseClick(other, LEFT)  # another panel: the transform is applied before it acts
    assert not tool.pending and doc.history.entries == ["Transform “Layer 1”"]
    tool.set_values(x=20, y=20)
    qtbot.keyClick(canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # e.g. Save
    assert not tool.pending and len(doc.history.entries) == 2
    assert doc.active_layer.surface.bounds() == Rect(20, 20, 60, 40)
