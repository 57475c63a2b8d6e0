"""A scripted stroke through the tool layer changes exactly the expected pixels."""

import numpy as np
import pytest

from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.base import BrushSettings, PointerEvent, ToolContext
from canvasai.tools.brush import BrushTool, EraserTool, MaskBrushTool, MaskEraserTool


def make(doc, **brush):
    settings = BrushSettings(**{"size": 20, "hardness": 1.0, "spacing": 0.05, **brush})
    return ToolContext(doc, Compositor(doc), brush=settings, foreground=(255, 0, 0))


def stroke(tool, points, pressure=1.0):
    tool.press(PointerEvent(*points[0], pressure=pressure))
    for p in points[1:]:
        tool.move(PointerEvent(*p, pressure=pressure))
    tool.release(PointerEvent(*points[-1], pressure=pressure))


def distance_to_segment(shape, a, b):
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + 0.5
    ax, ay = a
    bx, by = b
    t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
    return np.hypot(xs - (ax + t * (bx - ax)), ys - (ay + t * (by - ay)))


def test_hard_stroke_changes_exactly_the_pixels_under_it_and_undo_restores_bytes():
    doc = Document(128, 96)
    layer = doc.active_layer
    layer.surface.write(0, 0, np.random.default_rng(0).integers(0, 255, (96, 128, 4), dtype=np.uint8))
    before = layer.surface.read(doc.rect).copy()
    stroke(BrushTool(make(doc)), [(20, 40), (60, 45), (100, 50)])
    after = layer.surface.read(doc.rect).copy()
    d = np.minimum(distance_to_segment((96, 128), (20, 40), (60, 45)),
                   distance_to_segment((96, 128), (60, 45), (100, 50)))
    changed = (after != before).any(axis=-1)
    assert not changed[d > 10 + 1.5].any(), "pixels outside the brush changed"
    inside = d < 10 - 1.5
    assert (after[inside] == (255, 0, 0, 255)).all(), "pixels under the brush are not the colour"
    assert doc.history.entries == ["Brush stroke"]
    doc.undo()
    assert np.array_equal(layer.surface.read(doc.rect), before)
    doc.redo()
    assert np.array_equal(layer.surface.read(doc.rect), after)


def test_overlapping_dabs_never_exceed_stroke_opacity():
    doc = Document(64, 64, background=None)
    stroke(BrushTool(make(doc, opacity=0.5)), [(10, 32), (54, 32), (10, 32)])
    a = doc.active_layer.surface.read(doc.rect)[..., 3]
    assert a.max() == 128


def test_pressure_makes_dabs_smaller_and_lighter():
    doc = Document(128, 64, background=None)
    tool = BrushTool(make(doc, hardness=0.5))
    stroke(tool, [(32, 32)], pressure=1.0)
    stroke(tool, [(96, 32)], pressure=0.3)
    a = doc.active_layer.surface.read(doc.rect)[..., 3]
    full, light = a[:, :64], a[:, 64:]
    assert (light > 0).sum() < (full > 0).sum()
    assert light.max() < full.max()


def test_eraser_removes_alpha_and_frees_tiles():
    doc = Document(64, 64, background=None)
    layer = doc.active_layer
    layer.surface.write(0, 0, np.full((64, 64, 4), 255, np.uint8))
    stroke(EraserTool(make(doc, size=200)), [(32, 32)])
    assert layer.surface.nbytes == 0
    doc.undo()
    assert (layer.surface.read(doc.rect) == 255).all()


def test_stroke_is_clipped_by_the_selection():
    from canvasai.core.geometry import Rect
    from canvasai.document.selection import select_rect

    doc = Document(64, 64, background=None)
    select_rect(doc, Rect(0, 0, 32, 64))
    stroke(BrushTool(make(doc, size=30)), [(10, 32), (54, 32)])
    a = doc.active_layer.surface.read(doc.rect)[..., 3]
    assert a[:, :32].any() and not a[:, 32:].any()


def test_locked_layer_is_not_painted_and_says_why():
    doc = Document(32, 32, background=None)
    doc.set_layer_properties(doc.active_layer, locked=True)
    messages = []
    ctx = make(doc)
    ctx.status = messages.append
    stroke(BrushTool(ctx), [(5, 5), (20, 20)])
    assert doc.active_layer.surface.nbytes == 0 and "locked" in messages[0]


@pytest.mark.parametrize("tool_cls", [MaskBrushTool])
def test_mask_brush_paints_the_mask_not_the_layer(tool_cls):
    doc = Document(64, 64)
    seen = []
    doc.mask_changed.connect(seen.append)
    stroke(tool_cls(make(doc)), [(10, 10), (50, 10)])
    m = doc.mask.read(doc.rect)[..., 0]
    assert m[10, 30] == 255 and m[40, 30] == 0 and seen
    assert doc.active_layer.surface.nbytes == 0
    stroke(MaskEraserTool(make(doc, size=100)), [(32, 10)])
    assert not doc.mask.read(doc.rect).any()
    doc.undo()
    assert doc.mask.read(doc.rect)[10, 30, 0] == 255
