"""Control layers (issue 12): several ControlNets at once, start/end, family checks, maps.

Tiny random ControlNets (tests/support/tiny_controlnets.py) loaded through the registry
-> DiffusersBackend path, as a person's would be."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from canvasai.backends import preprocessors
from canvasai.backends.api import (
    BlendSettings,
    ControlKind,
    ControlSettings,
    GenerationRequest,
    Task,
)
from canvasai.backends.diffusion import common, controls, families
from canvasai.backends.diffusion.control_maps import DEPTH_PROXY_NOTE, depth_proxy
from canvasai.backends.models import DEPTH_ESTIMATOR, ModelRegistry
from canvasai.core.errors import GenerationError, ModelError
from tests.support.fixtures import RecordingContext

W, H = 64, 64


# ------------------------------------------------------------------------------- pictures
def _drawing() -> np.ndarray:
    """Black outlines on white paper: a rectangle and a diagonal."""
    img = np.full((H, W, 3), 255, np.uint8)
    img[12:14, 10:54] = 0
    img[50:52, 10:54] = 0
    img[12:52, 10:12] = 0
    img[12:52, 52:54] = 0
    for i in range(16, 48):
        img[i, i - 2 : i] = 0
    return img


def _photo() -> np.ndarray:
    """A smooth gradient with a bright disc on it (edges only at the disc)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 60 + xx * 1.0 + yy * 0.5
    disc = (xx - 30) ** 2 + (yy - 34) ** 2 < 14**2
    base[disc] = 230
    return np.repeat(np.clip(base, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.support.tiny_controlnets import build_tiny_controlnets

    return build_tiny_controlnets(tmp_path_factory.getbasetemp() / "tiny-controlnets")


@pytest.fixture(scope="module")
def registry(tiny_models, nets) -> ModelRegistry:
    return ModelRegistry([tiny_models.root, nets.root], include_hf_cache=False, index=False)


@pytest.fixture(scope="module")
def backend(registry):
    from canvasai.backends.diffusion.backend import DiffusersBackend

    return DiffusersBackend(registry)


def _canny(image=None, **kw) -> ControlSettings:
    return ControlSettings(ControlKind.CANNY, _drawing() if image is None else image,
                           model="controlnet/sd1-tiny-control-canny", **kw)


def _lineart(image=None, **kw) -> ControlSettings:
    return ControlSettings(ControlKind.LINEART, _photo() if image is None else image,
                           model="controlnet/sd1-tiny-control-lineart", **kw)


def _run(backend, *controls_, **kw):
    kw.setdefault("task", Task.TXT2IMG)
    kw.setdefault("model", "sd1-tiny")
    kw.setdefault("steps", 3)
    kw.setdefault("seed", 11)
    kw.setdefault("prompt", "a house")
    if kw["task"] == Task.TXT2IMG:
        kw.setdefault("width", W)
        kw.setdefault("height", H)
    req = GenerationRequest(controls=tuple(controls_), **kw)
    return backend.run(req, RecordingContext())


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[..., :3].astype(np.int16) - b[..., :3].astype(np.int16)).mean())


# ---------------------------------------------------------------------------- several nets
@pytest.mark.parametrize("task", [Task.TXT2IMG, Task.SKETCH, Task.IMG2IMG])
def test_two_control_layers_are_both_used(backend, task) -> None:
    extra = {"image": _picture(3), "strength": 0.8} if task == Task.IMG2IMG else {}
    both = _run(backend, _canny(), _lineart(), task=task, **extra)
    first = _run(backend, _canny(), task=task, **extra)
    second = _run(backend, _lineart(), task=task, **extra)
    none = _run(backend, task=Task.TXT2IMG if task == Task.SKETCH else task, **extra)
    for other in (first, second, none):
        assert _differ(both.images[0], other.images[0]) > 0.5
    assert _differ(first.images[0], second.images[0]) > 0.5
    meta = both.metadata
    assert [c["kind"] for c in meta["controls"]] == ["canny", "lineart"]
    assert [c["controlnet"] for c in meta["controls"]] == [
        "controlnet/sd1-tiny-control-canny", "controlnet/sd1-tiny-control-lineart"]
    assert "ControlNet" in meta["pipeline"]
    assert both.images[0].shape == (H, W, 4)


def test_inpainting_model_and_sdxl_refine_with_control_layers(backend) -> None:
    """An inpainting model refines through its ControlNet inpaint pipeline (full mask);
    SDXL through its ControlNet img2img pipeline, two layers sharing one ControlNet."""
    img = _picture(6)
    res = _run(backend, _canny(), _lineart(), task=Task.IMG2IMG, model="sd1-tiny-inpaint",
               image=img, strength=0.7)
    assert res.metadata["pipeline"] == "StableDiffusionControlNetInpaintPipeline"
    xl = "controlnet/sdxl-tiny-control-canny"
    layers = (ControlSettings(ControlKind.CANNY, _drawing(), model=xl),
              ControlSettings(ControlKind.CANNY, _photo(), model=xl, scale=0.5, end=0.5))
    res = _run(backend, *layers, task=Task.IMG2IMG, model="sdxl-tiny", image=img, strength=0.7)
    assert res.metadata["pipeline"] == "StableDiffusionXLControlNetImg2ImgPipeline"
    assert res.images[0].shape == (H, W, 4)


def test_inpaint_with_two_control_layers_keeps_outside_of_mask(backend) -> None:
    from canvasai.backends import masking

    img = _picture(5)
    mask = np.zeros((H, W), np.uint8)
    mask[20:40, 24:48] = 255
    both = _run(backend, _canny(), _lineart(), task=Task.INPAINT, image=img, mask=mask)
    first = _run(backend, _canny(), task=Task.INPAINT, image=img, mask=mask)
    out = both.images[0]
    outside = masking.paste_alpha(mask, BlendSettings()) == 0
    np.testing.assert_array_equal(out[outside][:, :3], img[outside])
    assert _differ(out, first.images[0]) > 0.1
    assert len(both.metadata["controls"]) == 2


def test_start_end_and_strengths_reach_the_pipeline(backend, monkeypatch) -> None:
    seen: list[dict] = []
    real = common.run_batch

    def spy(manager, loaded, pipe, ctx, reporter, seeds, kwargs, **kw):
        seen.append(dict(kwargs, pipe=type(pipe).__name__))
        return real(manager, loaded, pipe, ctx, reporter, seeds, kwargs, **kw)

    monkeypatch.setattr(common, "run_batch", spy)
    _run(backend, _canny(scale=1.2, start=0.0, end=0.5), _lineart(scale=0.6, start=0.5, end=1.0))
    kw = seen[-1]
    assert kw["control_guidance_start"] == [0.0, 0.5]
    assert kw["control_guidance_end"] == [0.5, 1.0]
    assert kw["controlnet_conditioning_scale"] == [1.2, 0.6]
    assert isinstance(kw["image"], list) and len(kw["image"]) == 2
    assert kw["image"][0].size == (W, H)
    # and the range has an effect: the same layer over a later range gives another picture
    full = _run(backend, _canny())
    late = _run(backend, _canny(start=0.6, end=1.0))
    assert _differ(full.images[0], late.images[0]) > 0.5


def test_control_nets_are_kept_between_jobs(backend, monkeypatch) -> None:
    _run(backend, _canny(), _lineart())
    loads: list[str] = []
    real = type(backend.manager).controlnet

    def counting(self, info):
        loads.append(info.name)
        return real(self, info)

    monkeypatch.setattr(type(backend.manager), "controlnet", counting)
    _run(backend, _canny(), _lineart(), seed=12)
    assert loads == []


# ------------------------------------------------------------------------------- refusals
def test_wrong_family_controlnet_is_refused_before_loading(backend, monkeypatch) -> None:
    loads: list[str] = []
    monkeypatch.setattr(type(backend.manager), "controlnet",
                        lambda self, info, ctx=None: loads.append(info.name))
    wrong = ControlSettings(ControlKind.CANNY, _drawing(), model="controlnet/sdxl-tiny-control-canny")
    backend.manager.unload()  # and the main model is not loaded either: refused first
    main_loads: list[str] = []
    real_load = type(backend.manager).load
    monkeypatch.setattr(type(backend.manager), "load",
                        lambda self, info, *a, **k: main_loads.append(info.name)
                        or real_load(self, info, *a, **k))
    with pytest.raises(ModelError, match=r"is for SDXL models.*SD 1\.x model.*control layer 2"):
        _run(backend, _lineart(), wrong)
    assert loads == [] and main_loads == []  # not even the first, fitting one


def test_pose_without_a_model_says_what_to_install(backend, registry, monkeypatch) -> None:
    with pytest.raises(GenerationError, match="pose-estimation model.*ViTPose"):
        preprocessors.preprocess("pose", _photo(), registry)
    loads: list[str] = []
    monkeypatch.setattr(type(backend.manager), "controlnet",
                        lambda self, info, ctx=None: loads.append(info.name))
    pose = ControlSettings(ControlKind.POSE, _photo(), model="controlnet/sd1-tiny-control-canny")
    with pytest.raises(GenerationError, match="pose-estimation model"):
        _run(backend, pose)
    assert loads == []
    # a ready pose map (painted skeleton) is taken as it is
    ready, note = preprocessors.preprocess("pose", _drawing(), registry, preprocess=False)
    assert ready.shape == (H, W, 3) and note == ""


def _fake_loaded(family: str) -> SimpleNamespace:
    fam = families.get(family)
    return SimpleNamespace(family=fam, info=SimpleNamespace(family=family, name=f"a {family} model"))


def test_family_without_the_controlnet_route_is_named() -> None:
    plan = controls.ControlPlan((_canny(),), (), (np.zeros((H, W, 3), np.uint8),), (object(),))
    with pytest.raises(GenerationError, match="Refining with control layers.*SD 3.5"):
        plan.pipeline(None, _fake_loaded("sd3"), "controlnet_img2img")  # type: ignore[arg-type]


def test_family_taking_one_control_at_a_time_is_named() -> None:
    req = GenerationRequest(task=Task.TXT2IMG, width=W, height=H, controls=(_canny(), _lineart()))
    with pytest.raises(GenerationError, match="Z-Image models take one control layer"):
        controls.prepare(None, _fake_loaded("zimage"), req, (W, H))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- preprocessors
@pytest.mark.parametrize("kind", ["canny", "lineart", "scribble", "softedge"])
def test_weight_free_preprocessors_give_white_lines_on_black(kind) -> None:
    for picture in (_drawing(), _photo()):
        rgba = np.concatenate([picture, np.full((H, W, 1), 255, np.uint8)], axis=2)
        cmap, note = preprocessors.preprocess(kind, rgba)
        assert note == ""
        assert cmap.shape == (H, W, 3) and cmap.dtype == np.uint8
        assert (cmap[..., 0] == cmap[..., 1]).all() and (cmap[..., 1] == cmap[..., 2]).all()
        assert (cmap[..., 0] < 32).mean() > 0.5  # black background
        assert cmap.max() == 255 or kind == "softedge" and cmap.max() > 200
    # lines where the drawing's lines are, nothing in the flat middle of the paper
    cmap, _ = preprocessors.preprocess(kind, _drawing())
    assert cmap[11:16, 20:44].max() > 100
    assert cmap[24:30, 40:46].max() == 0
    flat, _ = preprocessors.preprocess(kind, np.full((H, W, 3), 128, np.uint8))
    assert flat.max() == 0


def test_softedge_keeps_grey_levels_and_lineart_reads_photos() -> None:
    soft, _ = preprocessors.preprocess(ControlKind.SOFTEDGE, _photo())
    assert len(np.unique(soft)) > 20  # soft, not binary
    lines, _ = preprocessors.preprocess(ControlKind.LINEART, _photo())
    ring = lines[34, 10:20].max(), lines[34, 40:50].max()  # the disc's left and right edge
    assert min(ring) > 50
    assert lines[5:15, 50:60].max() == 0  # the smooth gradient gives no lines


def test_preprocessors_import_without_torch() -> None:
    code = ("import sys, numpy as np; from canvasai.backends.preprocessors import preprocess; "
            "m, n = preprocess('canny', np.zeros((8, 8, 3), np.uint8)); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(m.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(8, 8, 3)"


def test_unknown_control_type_is_a_sentence() -> None:
    with pytest.raises(GenerationError, match="Unknown control type “edges”"):
        preprocessors.preprocess("edges", _photo())


# ------------------------------------------------------------------------------------ depth
def test_depth_without_a_model_is_the_proxy_with_its_note(tiny_models) -> None:
    bare = ModelRegistry([tiny_models.root], include_hf_cache=False, index=False)
    cmap, note = preprocessors.preprocess("depth", _photo(), bare)
    assert note.startswith(DEPTH_PROXY_NOTE) and "Depth-Anything" in note
    np.testing.assert_array_equal(cmap, depth_proxy(_photo()))


def test_depth_runs_the_installed_depth_model(backend, registry, monkeypatch) -> None:
    info = registry.find(DEPTH_ESTIMATOR)
    assert info is not None and info.name == "depth/tiny-depth-anything"
    assert "depth" in preprocessors.describe("depth", registry)
    cmap, note = preprocessors.preprocess("depth", _photo(), registry, device="cpu")
    assert note == "depth estimated with depth/tiny-depth-anything"
    assert cmap.shape == (H, W, 3) and cmap.dtype == np.uint8
    assert cmap.min() == 0 and cmap.max() == 255  # normalised, near = bright
    assert not np.array_equal(cmap, depth_proxy(_photo()))
    # a generation with a depth layer goes through the model too
    seen: list[str] = []
    real = preprocessors.depth_from_model
    monkeypatch.setattr(preprocessors, "depth_from_model",
                        lambda *a, **k: seen.append("model") or real(*a, **k))
    depth = ControlSettings(ControlKind.DEPTH, _photo(), model="controlnet/sd1-tiny-control-canny")
    res = _run(backend, depth)
    assert seen == ["model"]
    assert "depth estimated with depth/tiny-depth-anything" in res.metadata["note"]


# ------------------------------------------------------------------------------ a DiT family
def test_flux_runs_two_control_layers_for_generate_and_refine(tmp_path_factory) -> None:
    """The family module decides: Flux's MultiControlNet, its ControlNet img2img pipeline."""
    import diffusers

    tf = pytest.importorskip("tests.support.tiny_families")
    from canvasai.backends.diffusion.backend import DiffusersBackend
    from tests.support.tiny_controlnets import _wake

    root = tmp_path_factory.getbasetemp() / "tiny-families"
    folder = tf.cached("flux", root)
    nets_root = tmp_path_factory.mktemp("flux-nets")
    t = diffusers.FluxTransformer2DModel.from_pretrained(folder / "transformer")
    for i, kind in enumerate(("canny", "lineart")):
        net = diffusers.FluxControlNetModel.from_config(
            {**dict(t.config), "num_layers": 1, "num_single_layers": 0})
        _wake(net, 10 + i).save_pretrained(nets_root / f"flux-tiny-{kind}")
    backend = DiffusersBackend(ModelRegistry([nets_root], include_hf_cache=False, index=False))
    canny = ControlSettings(ControlKind.CANNY, _drawing())
    lineart = ControlSettings(ControlKind.LINEART, _photo())
    common_kw = {"model": str(folder), "steps": 2, "seed": 3, "prompt": "a house"}
    gen = {"task": Task.TXT2IMG, "width": W, "height": H}
    both = backend.run(GenerationRequest(controls=(canny, lineart), **gen, **common_kw),
                       RecordingContext())
    one = backend.run(GenerationRequest(controls=(canny,), **gen, **common_kw), RecordingContext())
    assert both.metadata["pipeline"] == "FluxControlNetPipeline"
    assert _differ(both.images[0], one.images[0]) > 0.1
    ref = {"task": Task.IMG2IMG, "image": _picture(2), "strength": 0.9}
    res = backend.run(GenerationRequest(controls=(canny, lineart), **ref, **common_kw),
                      RecordingContext())
    assert res.metadata["pipeline"] == "FluxControlNetImg2ImgPipeline"
    assert res.images[0].shape == (H, W, 4)


# ------------------------------------------------------------------------------------- pose
def test_pose_runs_the_installed_vitpose_model(nets) -> None:
    from canvasai.backends.models import POSE_ESTIMATOR

    reg = ModelRegistry([nets.pose_root], include_hf_cache=False, index=False)
    info = reg.find(POSE_ESTIMATOR)
    assert info is not None and info.name == "tiny-vitpose"
    photo = _picture(8)[:, :40]
    cmap, note = preprocessors.preprocess("pose", photo, reg, device="cpu")
    assert cmap.shape == (H, 40, 3) and cmap.dtype == np.uint8
    assert note.startswith("pose estimated with tiny-vitpose") and "no person detector" in note
    points, scores = preprocessors.pose_keypoints(photo, info, "cpu")
    assert points.shape == (17, 2) and scores.shape == (17,)
    assert (points >= 0).all() and (points[:, 0] <= 39).all() and (points[:, 1] <= H - 1).all()
    drawn = preprocessors.draw_openpose((H, 40), points, scores, min_score=-np.inf)
    assert drawn.any()


def test_openpose_drawing_follows_the_keypoints() -> None:
    pts = np.zeros((17, 2), np.float32)
    pts[5], pts[6] = (40, 20), (24, 20)  # left / right shoulder (COCO)
    pts[0] = (32, 8)  # nose
    scores = np.zeros(17, np.float32)
    scores[[0, 5, 6]] = 1.0
    cmap = preprocessors.draw_openpose((H, W), pts, scores)
    assert tuple(cmap[20, 32]) == (255, 85, 0)  # the neck (OpenPose point 1), between them
    assert tuple(cmap[8, 32]) == (255, 0, 0)  # the nose
    assert tuple(cmap[20, 24]) == (255, 170, 0)  # right shoulder, OpenPose point 2
    assert cmap[50:, :].max() == 0  # nothing where no keypoint was found


def test_a_cancelled_job_stops_before_its_controlnets_load(backend, monkeypatch) -> None:
    from canvasai.core.errors import JobCancelled

    ctx = RecordingContext()
    maps: list[str] = []
    real = preprocessors.preprocess

    def cancel_after_first(kind, *a, **k):  # the person cancels while the maps are made
        maps.append(str(kind))
        ctx.cancelled.set()
        return real(kind, *a, **k)

    monkeypatch.setattr(preprocessors, "preprocess", cancel_after_first)
    loads: list[str] = []
    monkeypatch.setattr(type(backend.manager), "controlnet",
                        lambda self, info, ctx=None: loads.append(info.name))
    req = GenerationRequest(task=Task.TXT2IMG, model="sd1-tiny", width=W, height=H, seed=1,
                            controls=(_canny(), _lineart()))
    with pytest.raises(JobCancelled):
        backend.run(req, ctx)
    assert len(maps) == 1 and loads == []


def test_cancel_while_a_controlnet_loads_returns_at_once_and_the_next_job_takes_it(
        registry, monkeypatch) -> None:
    """A ControlNet is as big as a UNet: its load runs on its own thread like a main
    model's, a cancelled job stops waiting at once, and the load is not repeated."""
    import threading

    from canvasai.backends.diffusion.pipelines import PipelineManager
    from canvasai.backends.models import CONTROLNET
    from canvasai.core.errors import JobCancelled

    manager = PipelineManager(registry)
    info = registry.find(CONTROLNET, family="sd1")
    gate, builds = threading.Event(), []

    def slow_build(self, info):  # noqa: ANN001
        builds.append(threading.current_thread().name)
        gate.wait(30)
        return SimpleNamespace(name=info.name)

    monkeypatch.setattr(PipelineManager, "_load_controlnet", slow_build)
    ctx = RecordingContext()
    ctx.cancelled.set()  # Esc while the ControlNet loads
    with pytest.raises(JobCancelled):
        manager.controlnet(info, ctx)
    for _ in range(1000):  # the load thread may start after the job gave up waiting
        if builds:
            break
        threading.Event().wait(0.01)
    assert builds == ["canvasai-side-load"]  # still loading, in the background
    gate.set()
    net = manager.controlnet(info, RecordingContext())
    assert net.name == info.name and len(builds) == 1  # the next job took that load
    assert manager.controlnet(info) is net  # and it is kept
