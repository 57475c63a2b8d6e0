"""Editing flows end to end on the document with the classic (OpenCV) backend."""

from dataclasses import replace

import numpy as np
import pytest

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.selection import select_rect
from canvasai.document.stroke import Stroke
from canvasai.generation import flows
from canvasai.generation.flows import FlowError
from canvasai.generation.params import FlowParams
from canvasai.generation.runner import run_sync


def painted_doc(w=160, h=120):
    doc = Document(w, h)
    rng = np.random.default_rng(0)
    doc.write_pixels(doc.active_layer, 0, 0, rng.integers(0, 255, (h, w, 4), dtype=np.uint8) | 0)
    px = doc.active_layer.surface.read(doc.rect)
    px[..., 3] = 255
    doc.active_layer.surface.write(0, 0, px)
    doc.history.clear()
    return doc


def mask_circle(doc, cx, cy, r):
    s = Stroke(doc.mask, doc.rect)
    s.dab(cx, cy, r, 1.0)
    s.finish()


def run(job):
    result = run_sync(job.request)
    return result.images[0], result.seeds[0], dict(result.metadata)


def test_inpaint_changes_only_inside_the_feathered_mask_and_undoes_in_one_step():
    doc = painted_doc()
    mask_circle(doc, 80, 60, 12)
    before = Compositor(doc).flatten()
    params = FlowParams(grow_px=3, feather_px=5)
    job = flows.plan(doc, "auto", params)
    assert job.flow == "inpaint" and job.target.contains(Rect(68, 48, 24, 24))
    assert job.target.w % 8 == 0 and job.target.h % 8 == 0
    image, seed, meta = run(job)
    n = len(doc.history.entries)
    layer = flows.apply_result(doc, job, image, seed, meta)
    assert doc.layers[-1] is layer and layer.name.startswith("Generated:")
    assert layer.generation["seed"] == seed and len(doc.history.entries) == n + 1
    after = Compositor(doc).flatten()
    yy, xx = np.mgrid[0:doc.height, 0:doc.width]
    far = np.hypot(xx + 0.5 - 80, yy + 0.5 - 60) > 12 + 3 + 5 + 2
    assert np.array_equal(after[far], before[far])
    assert not np.array_equal(after[60, 80], before[60, 80])
    doc.undo()
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_inpaint_without_mask_or_selection_says_what_to_do():
    with pytest.raises(FlowError, match="mask"):
        flows.plan(Document(64, 64), "inpaint", FlowParams())


def test_selection_works_as_the_mask():
    doc = painted_doc()
    select_rect(doc, Rect(20, 20, 16, 16))
    job = flows.plan(doc, "auto", FlowParams())
    assert job.flow == "inpaint" and job.request.mask.any()


def test_outpaint_grows_canvas_keeps_existing_pixels():
    doc = painted_doc()
    before = Compositor(doc).flatten()
    job = flows.plan(doc, "outpaint", FlowParams(margins=(32, 0, 48, 16)))
    image, seed, meta = run(job)
    flows.apply_result(doc, job, image, seed, meta)
    assert (doc.width, doc.height) == (160 + 80, 120 + 16)
    after = Compositor(doc).flatten()
    assert np.array_equal(after[0:120, 32:192], before)
    assert after[:, :32, 3].min() == 255 and after[120:, :, 3].min() == 255  # new area filled
    doc.undo()
    assert (doc.width, doc.height) == (160, 120)
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_upscale_resizes_document_in_one_step_or_makes_a_new_one():
    doc = painted_doc(64, 48)
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=2))
    image, seed, meta = run(job)
    flows.apply_result(doc, job, image, seed, meta)
    assert (doc.width, doc.height) == (128, 96)
    doc.undo()
    assert (doc.width, doc.height) == (64, 48)
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=4, upscale_target="new_document"))
    image, seed, meta = run(job)
    new = flows.apply_result(doc, job, image, seed, meta)
    assert isinstance(new, Document) and (new.width, new.height) == (256, 192)
    assert (doc.width, doc.height) == (64, 48)


def test_upscale_resample_scales_every_layer_and_adds_none():
    doc = painted_doc(64, 48)
    top = doc.add_layer("Top")
    n = len(doc.layers)
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=2, upscale_target="resample",
                                                model="my-model", upscale_method="refine"))
    assert job.request.model == "classic"  # no AI for "resample every layer"
    flows.apply_result(doc, job, *run(job))
    assert (doc.width, doc.height) == (128, 96) and len(doc.layers) == n
    assert all(la.visible for la in doc.layers) and top in doc.layers


def test_upscale_into_a_new_layer_keeps_the_originals_hidden_beneath():
    doc = painted_doc(64, 48)
    originals = list(doc.layers)
    before = Compositor(doc).flatten()
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=2, upscale_target="layer"))
    image, seed, meta = run(job)
    layer = flows.apply_result(doc, job, image, seed, meta)
    assert doc.layers[-1] is layer and doc.layers[:-1] == originals
    assert not any(la.visible for la in originals)
    assert np.array_equal(layer.surface.read(doc.rect), image)
    assert originals[0].surface.read(doc.rect).shape[:2] == (96, 128)  # resampled too
    doc.undo()  # one step
    assert (doc.width, doc.height) == (64, 48) and doc.layers == originals
    assert all(la.visible for la in originals)
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_upscale_method_is_explicit():
    doc = painted_doc(32, 32)
    p = FlowParams(model="my-model", upscale_target="layer", upscale_steps=7,
                   upscale_refine_strength=0.25)
    assert flows.plan(doc, "upscale", p).request.model == "classic"  # Lanczos: no model
    job = flows.plan(doc, "upscale", replace(p, upscale_method="refine"))
    assert job.request.model == "my-model" and job.request.steps == 7
    assert job.request.upscale.refine_strength == 0.25
    with pytest.raises(FlowError):
        flows.plan(doc, "upscale", replace(p, upscale_method="refine", upscale_refine_strength=0))
    assert FlowParams.from_dict({"upscale_target": "resize"}).upscale_target == "layer"


def test_sketch_without_a_model_fails_clearly_and_plans_above_the_sketch():
    doc = Document(64, 64)
    sketch = doc.active_layer
    doc.set_layer_properties(sketch, is_sketch=True)
    s = Stroke(sketch.surface, doc.rect, color=(0, 0, 0))
    s.dab(32, 32, 10)
    s.finish()
    doc.add_layer("Above")
    job = flows.plan(doc, "auto", FlowParams())
    assert job.flow == "sketch" and job.sketch_layer_id == sketch.id
    assert job.request.control.image[32, 32].tolist() == [0, 0, 0]
    assert job.request.control.image[0, 0].tolist() == [255, 255, 255]
    # the layer lands directly above the sketch layer
    fake = np.full((64, 64, 4), 200, np.uint8)
    layer = flows.apply_result(doc, job, fake, 7)
    assert doc.layers[doc.index_of(sketch) + 1] is layer


def test_result_for_a_resized_canvas_is_refused_without_change():
    doc = painted_doc()
    mask_circle(doc, 50, 50, 5)
    job = flows.plan(doc, "inpaint", FlowParams())
    image, seed, _ = run(job)
    from canvasai.document.transform import resize_canvas

    resize_canvas(doc, 10, 0, 0, 0)
    n = len(doc.layers)
    with pytest.raises(FlowError):
        flows.apply_result(doc, job, image, seed)
    assert len(doc.layers) == n


def test_accepted_result_and_history_survive_an_ora_round_trip(tmp_path):
    from canvasai.formats.ora import load_ora, save_ora
    from canvasai.generation.history import params_from, record

    doc = painted_doc(64, 48)
    mask_circle(doc, 30, 20, 6)
    params = FlowParams(prompt="a lighthouse", grow_px=1, feather_px=2)
    job = flows.plan(doc, "inpaint", params)
    image, seed, meta = run(job)
    flows.apply_result(doc, job, image, seed, meta)
    assert doc.history.is_clean is False
    doc.history.mark_clean()
    record(doc, flows.generation_record(job, seed, meta), image)
    assert doc.history.is_clean is False  # a history entry is a change worth saving
    path = tmp_path / "p.ora"
    save_ora(doc, path)
    back = load_ora(path)
    assert back.layers[-1].generation["prompt"] == "a lighthouse"
    assert back.layers[-1].generation["seed"] == seed
    entry = back.metadata["generation_history"][-1]
    assert params_from(entry) == replace(params, seed=seed)
    assert params_from(back.layers[-1].generation) == replace(params, seed=seed)
    assert entry["thumbnail"].ndim == 3
    # one record, one set of keys: the layer's dict is the history entry less the thumbnail
    def same(d):  # the accept time differs from the finish time, nothing else
        return {k: v for k, v in d.items() if k not in ("thumbnail", "time")}

    assert same(entry) == same(back.layers[-1].generation)
    assert np.array_equal(Compositor(back).flatten(), Compositor(doc).flatten())


def test_edit_plans_the_selection_or_the_whole_picture_with_reference_layers(monkeypatch):
    from canvasai.backends import models
    from canvasai.backends.api import Task

    doc = painted_doc()
    ref = doc.add_layer("Reference")
    with pytest.raises(FlowError, match="instruction"):
        flows.plan(doc, "edit", FlowParams(prompt=" "))
    p = FlowParams(prompt="make it night", reference_layers=(ref.id,))
    whole = flows.plan(doc, "edit", p)
    assert whole.request.task == Task.EDIT and whole.request.mask is None
    assert whole.target == doc.rect and len(whole.request.references) == 1
    select_rect(doc, Rect(40, 30, 32, 24))
    part = flows.plan(doc, "edit", p)
    assert part.request.mask is not None and part.target.contains(Rect(40, 30, 32, 24))
    # a changed picture comes back: only the feathered selection reaches the canvas
    before = Compositor(doc).flatten()
    img = np.array(part.request.image)
    inside = part.request.mask > 0
    img[inside] = 255 - img[inside]
    flows.apply_result(doc, part, img, 1, {})
    after = Compositor(doc).flatten()
    t = part.target
    far = np.ones(after.shape[:2], bool)
    far[t.y : t.y + t.h, t.x : t.x + t.w] = False
    assert np.array_equal(after[far], before[far]) and not np.array_equal(after, before)
    # Auto picks Edit when the chosen model is an edit model
    fake = models.ModelInfo("kontext", models.Path("/m/kontext"), "flux", models.EDIT, "diffusers")
    monkeypatch.setattr(models, "peek", lambda name: fake if name == "kontext" else None)
    assert flows.auto_flow(doc, replace(p, model="kontext")) == "edit"
    assert flows.auto_flow(doc, replace(p, model="other")) == "inpaint"


def test_upscale_accept_status_says_what_accepting_does():
    doc = painted_doc(64, 48)
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=2))
    assert flows.upscale_accept_status(job) == "Resampling every layer to 128×96…"
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=4, upscale_target="new_document"))
    assert flows.upscale_accept_status(job) == "Opening the upscaled picture (256×192) as a new document…"


def test_upscaling_a_soft_edged_layer_keeps_its_edge_colour():
    doc = Document(48, 48, background=None)
    yy, xx = np.mgrid[0:48, 0:48]
    a = np.clip((16 - np.hypot(xx - 24, yy - 24)) / 8, 0, 1)
    px = np.zeros((48, 48, 4), np.uint8)
    px[..., :3] = (200, 120, 40)
    px[..., 3] = (a * 255 + 0.5).astype(np.uint8)
    px[px[..., 3] == 0] = 0  # transparent pixels are black: they must not darken the edge
    doc.write_pixels(doc.active_layer, 0, 0, px)
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=2, upscale_source="layer",
                                                upscale_target="layer"))
    layer = flows.apply_result(doc, job, *run(job))
    out = layer.surface.read(doc.rect)
    edge = out[(out[..., 3] > 8) & (out[..., 3] < 250)]
    assert len(edge) and np.abs(edge[:, :3].astype(int) - (200, 120, 40)).max() <= 3
