"""Live painting's planning (Qt-free): the live area, the request, what starts no job."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.api import Task
from canvasai.core.geometry import Rect
from canvasai.document import selection
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.layer import ControlRole, RegionRole
from canvasai.document.stroke import Stroke
from canvasai.generation import flows, live
from canvasai.generation.flows import FlowError
from canvasai.generation.params import FlowParams
from canvasai.generation.styles import LiveSettings, Style

MODEL = "some-sd-model"  # not in any registry: an SD 1.x-sized (512) model is assumed


def painted(w: int = 320, h: int = 200, seed: int = 0) -> Document:
    doc = Document(w, h)
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 255, (h, w, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc.active_layer.surface.write(0, 0, px)
    return doc


def stroke(doc: Document, x: float, y: float, r: float = 6, color=(255, 0, 0)) -> Rect:
    layer = doc.active_layer
    s = Stroke(layer.surface, doc.rect, color=color)
    s.dab(x, y, r, 1.0)
    doc.push_tiles_command(layer, s.finish(), s.rect, "Brush")
    doc.notify_pixels(layer, s.rect)
    return s.rect


def test_same_canvas_and_settings_give_the_same_request():
    doc = painted()
    p = FlowParams(prompt="a fox", model=MODEL)
    a, b = live.plan_live(doc, p), live.plan_live(doc, p)
    ra, rb = a.request, b.request
    assert ra.live and ra.task == Task.IMG2IMG and ra.batch_size == 1
    assert ra.seed is not None and ra.seed == rb.seed  # fixed: kept on the document
    assert np.array_equal(ra.image, rb.image)
    for f in ("prompt", "steps", "guidance", "strength", "model", "native_resolution"):
        assert getattr(ra, f) == getattr(rb, f), f
    assert a.target == b.target == doc.rect
    # a stroke changes the picture sent, nothing else
    stroke(doc, 100, 100)
    c = live.plan_live(doc, p).request
    assert not np.array_equal(c.image, ra.image) and c.seed == ra.seed
    # the panel's locked seed wins over the document's
    assert live.plan_live(doc, FlowParams(prompt="a fox", model=MODEL, seed=7)).request.seed == 7


def test_style_live_settings_and_the_panel_strength():
    doc = painted()
    style = Style("Turbo", prompt="{prompt}, watercolour",
                  live=LiveSettings(steps=2, guidance=0.0, strength=0.6))
    p = FlowParams(prompt="a fox", model=MODEL, steps=30, guidance=7.5, strength=0.9)
    req = live.plan_live(doc, p, style).request
    assert (req.steps, req.guidance, req.strength) == (2, 0.0, 0.6)
    assert req.prompt == "a fox, watercolour"
    assert live.plan_live(doc, p, style, strength=0.35).request.strength == 0.35
    plain = live.plan_live(doc, p).request  # no style: the default live settings
    d = LiveSettings()
    assert (plain.steps, plain.guidance, plain.strength) == (d.steps, d.guidance, d.strength)


def test_live_area_canvas_reduced_then_selection_then_pinned_frame():
    doc = painted(1200, 600)
    p = FlowParams(prompt="x", model=MODEL)
    job = live.plan_live(doc, p)
    assert job.target == doc.rect and live.live_area(doc)[1] == "canvas"
    h, w = job.request.image.shape[:2]
    assert max(w, h) <= 512 and w % 16 == 0 and h % 16 == 0 and abs(w / h - 2.0) < 0.1
    assert job.request.native_resolution is False  # runs at the reduced size itself
    # the whole reduced canvas matches the composite, scaled
    full = Compositor(doc).flatten()
    assert abs(float(job.request.image[..., :3].mean()) - float(full[..., :3].mean())) < 2

    selection.select_rect(doc, Rect(101, 50, 200, 150))
    area, source = live.live_area(doc)
    assert source == "selection" and area.contains(Rect(101, 50, 200, 150))
    job = live.plan_live(doc, p)
    assert job.target == area and job.request.image.shape[:2] == (area.h, area.w)
    assert job.request.native_resolution is True  # small: scaled to the native size

    live.set_live_frame(doc, Rect(600, 300, 256, 128))
    selection.select_none(doc)
    assert live.live_area(doc) == (Rect(600, 300, 256, 128), "frame")
    selection.select_rect(doc, Rect(0, 0, 50, 50))
    assert live.live_area(doc)[1] == "frame"  # pinned wins over a new selection
    live.set_live_frame(doc, None)
    assert live.live_area(doc)[1] == "selection"
    doc.metadata[live.FRAME_KEY] = ["bad", 1]  # a hand-edited file: ignored
    assert live.live_area(doc)[1] == "selection"


def test_a_stroke_outside_the_live_area_touches_nothing():
    doc = painted()
    live.set_live_frame(doc, Rect(0, 0, 100, 100))
    assert not live.touches_live_area(doc, stroke(doc, 250, 150))
    assert live.touches_live_area(doc, stroke(doc, 98, 50))
    assert not live.touches_live_area(doc, None)
    assert not live.touches_live_area(doc, Rect(0, 0, 0, 0))


def test_an_empty_area_is_generated_from_the_prompt():
    doc = Document(256, 128, background=None)
    req = live.plan_live(doc, FlowParams(prompt="a fox", model=MODEL)).request
    assert req.task == Task.TXT2IMG and (req.width, req.height) == (256, 128) and req.live


def test_control_layers_and_regions_go_along_at_the_reduced_size():
    doc = painted(1024, 512)
    lines = doc.add_layer("Lines")
    s = Stroke(lines.surface, doc.rect, color=(0, 0, 0))
    for x in range(100, 900, 20):
        s.dab(x, 256, 8)
    s.finish()
    lines.role = ControlRole(kind="lineart")
    sky = doc.add_layer("Sky")
    sky.surface.write(0, 0, np.full((200, 1024, 4), 255, np.uint8))
    sky.role = RegionRole("a stormy sky")
    req = live.plan_live(doc, FlowParams(prompt="x", model=MODEL)).request
    size = (req.image.shape[1], req.image.shape[0])
    assert size == (512, 256)
    assert len(req.controls) == 1 and req.controls[0].image.shape[:2] == (256, 512)
    assert len(req.regions) == 1 and req.regions[0].mask.shape == (256, 512)
    # the guides are not part of the picture: hiding the control layer leaves it alone
    lines.visible = False
    assert np.array_equal(live.plan_live(doc, FlowParams(prompt="x", model=MODEL))
                          .request.image, req.image)


def test_classic_cannot_paint_live():
    with pytest.raises(FlowError, match="diffusion model"):
        live.plan_live(painted(), FlowParams(prompt="x", model="classic"))


@pytest.mark.parametrize("new_layer", [False, True])
def test_apply_pastes_only_the_area_in_one_undo_step(new_layer):
    doc = painted()
    live.set_live_frame(doc, Rect(64, 32, 128, 96))
    job = live.plan_live(doc, FlowParams(prompt="x", model=MODEL))
    before = Compositor(doc).flatten()
    n_layers, n_hist = len(doc.layers), len(doc.history.entries)
    result = np.zeros((96, 128, 3), np.uint8)
    result[...] = (10, 200, 30)
    paste_job, image = live.apply_job(job, result, new_layer=new_layer)
    flows.apply_result(doc, paste_job, image, 1, {}, into_active=not new_layer,
                       clear_mask=False)
    assert len(doc.history.entries) == n_hist + 1
    assert len(doc.layers) == n_layers + (1 if new_layer else 0)
    after = Compositor(doc).flatten()
    inside = np.zeros(after.shape[:2], bool)
    inside[Rect(64, 32, 128, 96).slices()] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert (after[inside][:, :3] == (10, 200, 30)).all()
    doc.undo()
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_the_reduced_picture_of_a_large_canvas_matches_the_composite():
    import cv2

    doc = Document(2048, 1024)
    yy, xx = np.mgrid[0:1024, 0:2048]
    px = np.stack([xx % 256, yy % 256, (xx + yy) // 16 % 256, np.full_like(xx, 255)], -1)
    doc.active_layer.surface.write(0, 0, px.astype(np.uint8))
    top = doc.add_layer("Glaze")
    top.opacity = 0.5
    top.surface.write(0, 0, np.full((512, 2048, 4), (0, 0, 255, 255), np.uint8))
    guide = doc.add_layer("Lines")
    guide.surface.write(0, 0, np.zeros((1024, 2048, 4), np.uint8) + 255)
    guide.role = ControlRole(kind="lineart")
    image = live.picture(doc, doc.rect, (512, 256))
    want = cv2.resize(flows._snapshot(doc, doc.rect), (512, 256), interpolation=cv2.INTER_AREA)
    assert image.shape == want.shape == (256, 512, 4)
    assert np.abs(image.astype(int) - want.astype(int)).mean() < 4  # sampled, then averaged
