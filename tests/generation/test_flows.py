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
    ref.surface.write(4, 4, np.full((8, 8, 4), 90, np.uint8))  # an empty layer lends nothing
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
    assert flows.upscale_accept_status(job) == "Resampling to 128×96…"
    job = flows.plan(doc, "upscale", FlowParams(upscale_factor=4, upscale_target="new_document"))
    assert flows.upscale_accept_status(job) == "New document 256×192…"


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


# ------------------------------------------------------------------------- layer roles
def _paint(doc, layer, rect, rgba=(0, 0, 0, 255)):
    layer.surface.write(rect.x, rect.y, np.full((rect.h, rect.w, 4), rgba, np.uint8))
    doc.notify_pixels(layer, rect)


def _role_doc():
    """A painted picture with two control layers, a reference and two regions."""
    from canvasai.document.layer import ControlRole, ReferenceRole, RegionRole

    doc = painted_doc(160, 120)
    lines = doc.add_layer("Lines")
    _paint(doc, lines, Rect(10, 10, 30, 4))
    lines.role = ControlRole(kind="lineart", strength=0.8, start=0.0, end=0.5)
    depth = doc.add_layer("Depth")
    _paint(doc, depth, Rect(100, 60, 20, 20), (200, 200, 200, 255))
    depth.role = ControlRole(kind="depth", preprocess=False)
    ref = doc.add_layer("Fox photo")
    _paint(doc, ref, Rect(120, 5, 16, 12), (250, 120, 10, 255))
    ref.role = ReferenceRole(kind="style", strength=1.2)
    sky = doc.add_layer("Sky")
    _paint(doc, sky, Rect(0, 0, 160, 40), (90, 140, 250, 255))
    sky.role = RegionRole("a stormy sky", "sun")
    fox = doc.add_layer("Fox")
    _paint(doc, fox, Rect(60, 70, 30, 30), (250, 120, 10, 128))
    fox.role = RegionRole("a red fox")
    doc.history.clear()
    return doc


def test_every_visible_role_layer_reaches_the_request_of_each_task():
    from canvasai.backends.api import ControlKind, ReferenceKind, Task

    doc = _role_doc()
    select_rect(doc, Rect(8, 0, 128, 112))  # generate / refine use the selection's bounds
    for flow, task in (("generate", Task.TXT2IMG), ("refine", Task.IMG2IMG),
                       ("inpaint", Task.INPAINT), ("sketch", Task.SKETCH)):
        req = flows.plan(doc, flow, FlowParams(prompt="x")).request
        assert req.task == task
        assert [c.kind for c in req.controls] == [ControlKind.LINEART, ControlKind.DEPTH]
        assert [(c.scale, c.start, c.end, c.preprocess) for c in req.controls] == [
            (0.8, 0.0, 0.5, True), (1.0, 0.0, 1.0, False)]
        (ref,) = req.references
        assert (ref.kind, ref.strength, ref.image.shape) == (ReferenceKind.STYLE, 1.2, (12, 16, 3))
        assert ref.image[0, 0].tolist() == [250, 120, 10]  # its painted part only
        assert [r.prompt for r in req.regions] == ["a stormy sky", "a red fox"]  # bottom first
        assert req.regions[0].negative_prompt == "sun"
        w, h = req.output_size
        assert all(r.mask.shape == (h, w) for r in req.regions)
        assert all(c.image.shape[:2] == (h, w) for c in req.controls)
    doc.selection = None
    edit = flows.plan(doc, "edit", FlowParams(prompt="make it night"))
    assert len(edit.request.controls) == 2 and len(edit.request.references) == 1
    for flow in ("outpaint", "upscale"):  # these take none of them
        p = FlowParams(margins=(16, 0, 0, 0)) if flow == "outpaint" else FlowParams()
        req = flows.plan(doc, flow, p).request
        assert not req.controls and not req.references and not req.regions


def test_controls_and_regions_are_cropped_to_the_jobs_area_like_its_image():
    doc = _role_doc()
    select_rect(doc, Rect(8, 8, 40, 24))
    job = flows.plan(doc, "generate", FlowParams(prompt="x"))
    r = job.source_rect
    assert (r.x, r.y) == (8, 8) and (job.request.width, job.request.height) == (r.w, r.h)
    lines = job.request.controls[0].image
    # the control over the job's area: the line at (10..40, 10..14) sits at (2.., 2..) in it
    assert lines[2, 2].tolist() == [0, 0, 0] and lines[0, 0].tolist() == [255, 255, 255]
    assert lines.shape[:2] == (r.h, r.w)
    # the sky region covers rows y < 40 of the document: rows < 32 of the crop
    (sky,) = [g for g in job.request.regions if g.prompt == "a stormy sky"]
    assert sky.mask.shape == (r.h, r.w) and sky.mask.all()  # the area lies inside it
    # the fox region is outside this area: left out, and the job says so
    assert [g.prompt for g in job.request.regions] == ["a stormy sky"]
    assert any("“Fox” is outside" in n for n in job.notes)
    # inpaint: the same crop as the image it sends (the context rectangle)
    doc.selection = None
    mask_circle(doc, 75, 85, 6)
    job = flows.plan(doc, "inpaint", FlowParams())
    ctx = job.source_rect
    (fox,) = [g for g in job.request.regions if g.prompt == "a red fox"]
    expected = doc.layers[-1].surface.read(ctx)[..., 3]
    assert np.array_equal(fox.mask, expected) and fox.mask.shape == job.request.image.shape[:2]
    depth = job.request.controls[1].image
    assert np.array_equal(depth, flows._over_white(doc.layers[3], ctx))


def test_control_images_are_the_layer_over_white():
    from canvasai.document.layer import Layer

    layer = Layer("strokes")
    px = np.zeros((4, 4, 4), np.uint8)
    px[0, 0] = (0, 0, 0, 255)
    px[0, 1] = (0, 0, 0, 128)
    px[0, 2] = (200, 100, 0, 64)
    layer.surface.write(0, 0, px)
    out = flows._over_white(layer, Rect(0, 0, 4, 4))
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [255, 255, 255]
    assert abs(int(out[0, 1, 0]) - 127) <= 1
    expected = [round(c * 64 / 255 + 255 * (1 - 64 / 255)) for c in (200, 100, 0)]
    assert np.abs(out[0, 2].astype(int) - expected).max() <= 1


def test_region_masks_are_resized_as_the_output():
    doc = _role_doc()
    regions, _ = flows.region_inputs(doc, doc.rect, (80, 60))
    assert [r.mask.shape for r in regions] == [(60, 80), (60, 80)]
    assert regions[0].mask[:19].all() and not regions[0].mask[21:].any()


def test_hidden_role_layers_are_ignored_and_guides_stay_out_of_the_picture():
    doc = _role_doc()
    with_all = flows.plan(doc, "refine", FlowParams(prompt="x")).request
    for name in ("Lines", "Fox photo", "Fox"):
        layer = next(la for la in doc.layers if la.name == name)
        doc.set_layer_properties(layer, visible=False)
    req = flows.plan(doc, "refine", FlowParams(prompt="x")).request
    assert [c.kind.value for c in req.controls] == ["depth"]
    assert not req.references and [r.prompt for r in req.regions] == ["a stormy sky"]
    # control and reference layers are guides: the picture the job reads leaves them out
    assert np.array_equal(with_all.image[60:80, 100:120], painted_doc().layers[1].surface.read(
        Rect(100, 60, 20, 20)))
    assert flows.roles_summary(doc) == "1 control layer, 1 region"
    choice, why = flows.auto_choice(doc, FlowParams())
    assert choice == "sketch" and "“Depth” is a control layer" in why
    assert "uses 1 control layer, 1 region" in why and "hidden, so not used: “Lines”" in why


def test_auto_says_what_it_used_and_too_many_control_layers_are_refused():
    from canvasai.document.layer import ControlRole

    doc = _role_doc()
    choice, why = flows.auto_choice(doc, FlowParams())
    assert choice == "sketch" and "2 control layers are visible" in why
    assert "uses 2 control layers, 1 reference, 2 regions" in why
    mask_circle(doc, 30, 30, 5)
    assert flows.auto_choice(doc, FlowParams())[1].startswith("a mask is painted; uses 2 control")
    for i in range(3):
        layer = doc.add_layer(f"Extra {i}")
        _paint(doc, layer, Rect(0, 0, 4, 4))
        layer.role = ControlRole(kind="canny")
    with pytest.raises(FlowError, match="5 control layers are visible; at most 4"):
        flows.plan(doc, "inpaint", FlowParams())


def test_sketch_renders_every_control_layer_and_lands_above_the_topmost():
    doc = _role_doc()
    job = flows.plan(doc, "auto", FlowParams(prompt="x", sketch_use_mask=False))
    assert job.flow == "sketch" and len(job.request.controls) == 2
    depth = next(la for la in doc.layers if la.name == "Depth")
    assert job.sketch_layer_id == depth.id
    # without control layers the active layer is the sketch, with the panel's type (the CLI)
    from canvasai.backends.api import ControlKind

    plain = painted_doc(64, 64)
    job = flows.plan(plain, "sketch", FlowParams(prompt="x", control=ControlKind.CANNY,
                                                 control_scale=0.4))
    (c,) = job.request.controls
    assert (c.kind, c.scale) == (ControlKind.CANNY, 0.4)
    assert job.sketch_layer_id == plain.active_layer.id
