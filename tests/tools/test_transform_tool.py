"""Transform tool: box geometry, handle hits, drags, and the pixel side (commit, cancel)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.selection import select_rect
from canvasai.tools.base import PointerEvent, ToolContext
from canvasai.tools.transform import (
    HANDLE_HIT_PX,
    MOVE,
    ROTATE,
    ROTATE_STEM_PX,
    TransformBox,
    TransformTool,
    drag_move,
    drag_rotate,
    drag_scale,
    hit_test,
    over,
    transform_rgba,
)

SRC = Rect(10, 20, 40, 20)


def close(a, b, tol=1e-6):
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# -- geometry ------------------------------------------------------------------------------
def test_identity_box_corners_and_matrix():
    box = TransformBox.identity(SRC)
    assert box.is_identity and box.bounds() == SRC
    assert close(box.corners()[0], (10, 20)) and close(box.corners()[2], (50, 40))
    m = box.matrix()
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("pixel_size", [1.0, 0.25, 4.0])
def test_hit_test_finds_each_handle_the_knob_inside_and_outside(pixel_size):
    box = TransformBox.identity(SRC).with_values(angle=30)
    for name in ("nw", "n", "ne", "e", "se", "s", "sw", "w"):
        x, y = box.handle_point(name)
        assert hit_test(box, x + 0.5 * pixel_size, y - 0.5 * pixel_size, pixel_size) == name
    _, knob = box.rotate_knob(pixel_size)
    assert hit_test(box, *knob, pixel_size) == ROTATE
    assert hit_test(box, box.cx, box.cy, pixel_size) == MOVE
    far = box.to_world(0, -abs(box.height) / 2 - 3 * ROTATE_STEM_PX * pixel_size)
    assert hit_test(box, *far, pixel_size) == ROTATE  # anywhere outside rotates
    # just beyond the handle tolerance and outside the box: not a handle
    x, y = box.to_world(box.width / 2 + (HANDLE_HIT_PX + 2) * pixel_size, 0)
    assert hit_test(box, x, y, pixel_size) == ROTATE


def test_scale_from_the_opposite_side_and_from_the_centre():
    box = TransformBox.identity(SRC)
    # east handle to x=70: width 60, left edge stays at 10
    b = drag_scale(box, "e", 70, 999)
    assert (b.width, b.height) == (60, 20) and math.isclose(b.left, 10)
    # south-east corner with Alt: about the centre
    b = drag_scale(box, "se", 60, 45, from_centre=True)
    assert math.isclose(b.cx, box.cx) and math.isclose(b.cy, box.cy)
    assert math.isclose(b.width, 60) and math.isclose(b.height, 30)
    # dragging past the opposite side mirrors
    b = drag_scale(box, "w", 70, 30)
    assert b.width == -20 and math.isclose(b.cx, 60)


def test_shift_keeps_the_aspect_ratio():
    box = TransformBox.identity(SRC)  # 40 x 20
    b = drag_scale(box, "se", 90, 45, keep_aspect=True)
    assert math.isclose(b.width / b.height, 2.0)
    assert close(b.corners()[0], (10, 20))  # the opposite corner stays
    b = drag_scale(box, "e", 90, 0, keep_aspect=True)  # side handle: both grow
    assert (b.width, b.height) == (80, 40) and math.isclose(b.cy, box.cy)
    rotated = box.with_values(angle=45)
    b = drag_scale(rotated, "se", *rotated.to_world(40, 20), keep_aspect=True, from_centre=True)
    assert math.isclose(b.width / b.height, 2.0)


def test_rotate_follows_the_pointer_and_shift_snaps_to_15_degrees():
    box = TransformBox.identity(Rect(0, 0, 20, 20))  # centre (10, 10)
    b = drag_rotate(box, (20, 10), 10, 20)  # a quarter turn clockwise on screen
    assert math.isclose(b.angle, 90)
    pt = (10 + 10 * math.cos(math.radians(37)), 10 + 10 * math.sin(math.radians(37)))
    assert math.isclose(drag_rotate(box, (20, 10), *pt).angle, 37)
    assert drag_rotate(box, (20, 10), *pt, snap=True).angle == 30
    assert math.isclose(drag_rotate(box.with_values(angle=170), (20, 10), 10, 20).angle, -100)


def test_move_is_whole_pixels_and_shift_keeps_one_axis():
    box = TransformBox.identity(SRC)
    b = drag_move(box, (0, 0), 5.4, -2.6)
    assert b.integer_offset() == (5, -3)
    assert drag_move(box, (0, 0), 9, 3, constrain=True).integer_offset() == (9, 0)


def test_numeric_values_round_trip():
    box = TransformBox.identity(SRC).with_values(x=100, y=50, width=80, height=10, angle=-30)
    assert (box.left, box.top, box.width, box.height, box.angle) == (100, 50, 80, 10, -30)
    assert math.isclose(box.cx, 140) and math.isclose(box.cy, 55)
    assert TransformBox.identity(SRC).with_values(angle=370).angle == 10


# -- pixels ----------------------------------------------------------------------------------
def test_resampling_keeps_colour_at_soft_edges_and_moves_exactly():
    px = np.zeros((20, 20, 4), np.uint8)
    px[5:15, 5:15] = (200, 40, 10, 255)
    px[4, 5:15] = (200, 40, 10, 64)  # a soft top edge
    box = TransformBox.identity(Rect(0, 0, 20, 20))
    rect, out = transform_rgba(px, drag_move(box, (0, 0), 7, 3))
    assert rect == Rect(7, 3, 20, 20) and np.array_equal(out, px)
    rect, out = transform_rgba(px, box.with_values(width=40, height=40, angle=20))
    vis = out[out[..., 3] > 8]
    assert np.abs(vis[:, :3].astype(int) - (200, 40, 10)).max() <= 3  # no dark fringe
    rect, out = transform_rgba(px, box.with_values(width=5, height=5))
    assert rect == Rect(7, 7, 5, 5) or rect.w <= 6  # shrunk about the centre


def test_over_keeps_destination_under_transparent_and_source_where_opaque():
    dst = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    src = np.zeros_like(dst)
    src[:4] = (1, 2, 3, 255)
    out = over(dst, src)
    assert np.array_equal(out[4:], dst[4:]) and (out[:4] == (1, 2, 3, 255)).all()


def make_doc():
    doc = Document(120, 90)  # white background + "Layer 1"
    layer = doc.active_layer
    rng = np.random.default_rng(7)
    px = np.zeros((90, 120, 4), np.uint8)
    px[20:50, 30:80, :3] = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    px[20:50, 30:80, 3] = 255
    px[50:52, 30:80] = (10, 200, 30, 100)  # soft bottom edge
    layer.surface.write(0, 0, px)
    doc.history.clear()
    return doc, layer


def tool_for(doc):
    return TransformTool(ToolContext(doc, Compositor(doc)))


def drag(tool, a, b, **kw):
    tool.press(PointerEvent(*a, **kw))
    tool.move(PointerEvent((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, **kw))
    tool.release(PointerEvent(*b, **kw))


AROUND = Rect(-50, -50, 250, 200)  # the document and beyond


def layer_pixels(layer, rect=AROUND):
    return layer.surface.read(rect)


def test_commit_is_one_undo_step_and_undo_restores_the_bytes():
    doc, layer = make_doc()
    before = layer_pixels(layer)
    tool = tool_for(doc)
    box = tool.current_box()
    assert box is not None and box.source == Rect(30, 20, 50, 32)
    drag(tool, box.handle_point("se"), (100, 80))  # scale
    _, knob = tool.box.rotate_knob(tool.pixel_size)
    drag(tool, knob, (knob[0] + 30, knob[1] + 5))  # rotate
    drag(tool, (tool.box.cx, tool.box.cy), (tool.box.cx - 4, tool.box.cy + 2))  # move
    assert doc.history.entries == []  # nothing recorded until applied
    assert tool.commit()
    assert doc.history.entries == ["Transform “Layer 1”"]
    after = layer_pixels(layer)
    assert not np.array_equal(after, before)
    doc.undo()
    assert np.array_equal(layer_pixels(layer), before)
    doc.redo()
    assert np.array_equal(layer_pixels(layer), after)


def test_cancel_changes_nothing():
    doc, layer = make_doc()
    tiles_before = {k: layer.surface.tile(k).copy() for k in layer.surface.tile_keys()}
    tool = tool_for(doc)
    box = tool.current_box()
    drag(tool, box.handle_point("e"), (110, 30))
    assert tool.pending
    assert not layer.surface.read(Rect(30, 20, 50, 30))[..., 3].any()  # lifted: the hole shows
    tool.cancel()
    assert not tool.pending and doc.history.entries == [] and doc.history.is_clean
    assert set(layer.surface.tile_keys()) == set(tiles_before)
    for k, t in tiles_before.items():
        assert np.array_equal(layer.surface.tile(k), t)


def test_an_unchanged_box_applies_nothing():
    doc, layer = make_doc()
    before = layer_pixels(layer)
    tool = tool_for(doc)
    assert tool.begin() and tool.pending
    assert not tool.commit()
    assert doc.history.entries == [] and np.array_equal(layer_pixels(layer), before)


def test_selection_transform_leaves_a_transparent_hole_and_moves_the_selection():
    doc, layer = make_doc()
    before = layer_pixels(layer, doc.rect)
    select_rect(doc, Rect(30, 20, 20, 10))
    doc.history.clear()
    tool = tool_for(doc)
    assert tool.current_box().source == Rect(30, 20, 20, 10)
    drag(tool, (40, 25), (40 + 40, 25 + 40))  # move it 40 right, 40 down
    tool.commit()
    after = layer_pixels(layer, doc.rect)
    assert (after[20:30, 30:50] == 0).all()  # the hole is transparent
    assert np.array_equal(after[60:70, 70:90], before[20:30, 30:50])  # moved exactly
    untouched = np.ones((90, 120), bool)
    untouched[20:30, 30:50] = untouched[60:70, 70:90] = False
    assert np.array_equal(after[untouched], before[untouched])  # the rest of the layer stays
    sel = doc.selection.read(doc.rect)[..., 0]
    assert (sel[60:70, 70:90] == 255).all() and sel.sum() == 255 * 200  # the selection followed
    assert doc.history.entries == ["Transform selection"]
    doc.undo()
    assert np.array_equal(layer_pixels(layer, doc.rect), before)
    assert doc.selection.read(Rect(30, 20, 20, 10))[..., 0].min() == 255


def test_step_back_undoes_the_last_drag_then_cancels():
    doc, layer = make_doc()
    before = layer_pixels(layer)
    tool = tool_for(doc)
    box0 = tool.current_box()
    drag(tool, (50, 30), (60, 30))
    box1 = tool.box
    drag(tool, (60, 30), (60, 50))
    assert tool.step_back() and tool.box == box1
    assert tool.step_back() and tool.box == box0
    assert tool.step_back() and not tool.pending
    assert np.array_equal(layer_pixels(layer), before) and doc.history.entries == []


def test_numeric_entry_and_a_job_run_apart_from_its_commit():
    doc, layer = make_doc()
    tool = tool_for(doc)
    assert tool.set_values(width=100, height=64)  # 200 %
    assert tool.pending and (tool.box.width, tool.box.height) == (100, 64)
    job = tool.begin_commit()
    assert job is not None and tool.committing
    tool.press(PointerEvent(50, 30))  # input waits for the commit
    assert tool.box == job.box
    tool.finish_commit(job, job.run())  # (the UI runs job.run() on a pool thread)
    assert not tool.committing and doc.history.entries == ["Transform “Layer 1”"]
    assert layer.surface.bounds().w >= 99


def test_cancel_while_the_resample_runs_drops_its_result():
    doc, layer = make_doc()
    before = layer_pixels(layer)
    tool = tool_for(doc)
    tool.set_values(angle=45)
    job = tool.begin_commit()
    tool.cancel()
    tool.finish_commit(job, job.run())
    assert np.array_equal(layer_pixels(layer), before) and doc.history.entries == []


def test_says_why_there_is_nothing_to_transform():
    doc = Document(50, 50)
    tool = tool_for(doc)
    assert tool.current_box() is None and "empty" in tool.why_not()
    messages = []
    tool.ctx.status = messages.append
    tool.press(PointerEvent(10, 10))
    assert messages and not tool.pending
    doc.set_active(0)  # the filled background
    assert "background" in tool.why_not()
    select_rect(doc, Rect(0, 0, 10, 10))
    assert tool.current_box().source == Rect(0, 0, 10, 10)  # part of it can be transformed
    doc.set_layer_properties(doc.layers[0], locked=True)
    assert "locked" in tool.why_not()
