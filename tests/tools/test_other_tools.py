import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.base import PointerEvent, ToolContext
from canvasai.tools.fill import FillTool
from canvasai.tools.move import MoveTool
from canvasai.tools.picker import ColorPickerTool
from canvasai.tools.select import LassoSelectTool, RectSelectTool


def ctx_for(doc, **kw):
    return ToolContext(doc, Compositor(doc), **kw)


def click(tool, x, y, **kw):
    ev = PointerEvent(x, y, **kw)
    tool.press(ev)
    tool.release(ev)


def test_bucket_fill_fills_the_connected_region_within_tolerance():
    doc = Document(40, 40, background=None)
    layer = doc.active_layer
    px = np.zeros((40, 40, 4), np.uint8)
    px[:, 20] = (0, 0, 0, 255)  # a wall
    px[5:10, 5:10] = (0, 0, 0, 10)  # near-transparent: within tolerance 16 of the seed
    layer.surface.write(0, 0, px)
    click(FillTool(ctx_for(doc, foreground=(0, 255, 0), fill_tolerance=16)), 2, 2)
    out = layer.surface.read(doc.rect)
    assert (out[:, :20] [..., 1] == 255).all()
    assert (out[:, 21:][..., 3] == 0).all() and (out[:, 20] == (0, 0, 0, 255)).all()
    doc.undo()
    assert np.array_equal(layer.surface.read(doc.rect), px)


def test_picker_reads_the_composite():
    doc = Document(10, 10)
    doc.write_pixels(doc.active_layer, 0, 0, np.full((5, 5, 4), (10, 20, 30, 255), np.uint8))
    picked = []
    ctx = ctx_for(doc, on_color_picked=picked.append)
    click(ColorPickerTool(ctx), 2, 2)
    assert picked == [(10, 20, 30)] and ctx.foreground == (10, 20, 30)


def test_move_tool_translates_content_in_one_undo_step():
    doc = Document(200, 200, background=None)
    layer = doc.active_layer
    block = np.full((10, 10, 4), (9, 8, 7, 255), np.uint8)
    doc.write_pixels(layer, 60, 60, block)
    tool = MoveTool(ctx_for(doc))
    tool.press(PointerEvent(65, 65))
    tool.move(PointerEvent(80, 70))
    tool.move(PointerEvent(135, 95))
    tool.release(PointerEvent(135, 95))
    assert layer.surface.bounds() == Rect(130, 90, 10, 10)
    assert doc.history.entries[-1] == "Move layer"
    doc.undo()
    assert layer.surface.bounds() == Rect(60, 60, 10, 10)
    doc.redo()
    assert layer.surface.bounds() == Rect(130, 90, 10, 10)


def test_rect_and_lasso_selection_with_modifiers():
    doc = Document(100, 100)
    rect_tool = RectSelectTool(ctx_for(doc))
    rect_tool.press(PointerEvent(10, 10))
    rect_tool.move(PointerEvent(50, 50))
    assert rect_tool.overlay()[0][0] == "rect"
    rect_tool.release(PointerEvent(50, 50))
    assert doc.selection.bounds() == Rect(10, 10, 40, 40)
    lasso = LassoSelectTool(ctx_for(doc))
    pts = [(60, 60), (90, 60), (90, 90), (60, 90)]
    lasso.press(PointerEvent(*pts[0], modifiers=frozenset({"shift"})))
    for p in pts[1:]:
        lasso.move(PointerEvent(*p))
    lasso.release(PointerEvent(*pts[-1]))
    sel = doc.selection.read(doc.rect)[..., 0]
    assert sel[30, 30] == 255 and sel[75, 75] == 255 and sel[55, 55] == 0
    click(rect_tool, 5, 5)  # a click without drag deselects
    assert doc.selection is None
    doc.undo()
    assert doc.selection is not None
