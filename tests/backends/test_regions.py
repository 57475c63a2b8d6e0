"""Regional prompts (issue 12): masked cross-attention on the tiny SD 1.x / SDXL models.

Jobs go through the real DiffusersBackend (registry -> pipeline manager -> task module);
spies on `regions.RegionState` show what reaches the attention processors.
"""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.api import (
    GenerationRequest,
    OutpaintSettings,
    RegionPrompt,
    Task,
)
from canvasai.backends.diffusion import families, regions
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.core.errors import JobCancelled
from canvasai.core.geometry import Rect
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")

W, H = 96, 64


def _box(x0: int, y0: int, x1: int, y1: int, w: int = W, h: int = H) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def _request(**kw) -> GenerationRequest:
    kw.setdefault("task", Task.TXT2IMG)
    kw.setdefault("model", "sd1-tiny")
    kw.setdefault("prompt", "a red fox")
    kw.setdefault("steps", 3)
    kw.setdefault("seed", 5)
    kw.setdefault("scheduler", "ddim")
    if kw["task"] == Task.TXT2IMG:
        kw.setdefault("width", W)
        kw.setdefault("height", H)
    return GenerationRequest(**kw)


def _processors(backend: DiffusersBackend, model: str) -> dict[str, object]:
    loaded = backend.manager.load(backend.registry.resolve(model))
    return dict(loaded.pipe.unet.attn_processors)


class Spy:
    """Records what the regional processors are handed, and which layers ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.states: list[regions.RegionState] = []
        self.weights: list[tuple[int, tuple[int, ...] | None]] = []
        self.sizes: dict[tuple[int, int], np.ndarray] = {}
        self.processor_types: set[str] = set()
        real_init, real_weights = regions.RegionState.__init__, regions.RegionState.weights
        real_at = regions.RegionState.weights_at
        spy = self

        def init(state, pipe, *a, **k):
            real_init(state, pipe, *a, **k)
            spy.states.append(state)

        def weights(state, seq_len, device, dtype):
            procs = state.pipe.unet.attn_processors.values()
            spy.processor_types |= {type(p).__name__ for p in procs}
            out = real_weights(state, seq_len, device, dtype)
            spy.weights.append((seq_len, None if out is None else tuple(out.shape)))
            return out

        def weights_at(state, size):
            out = real_at(state, size)
            spy.sizes[size] = out
            return out

        monkeypatch.setattr(regions.RegionState, "__init__", init)
        monkeypatch.setattr(regions.RegionState, "weights", weights)
        monkeypatch.setattr(regions.RegionState, "weights_at", weights_at)


def _cross_attention_lengths(pipe) -> tuple[list[int], list]:
    """Sequence length of every cross-attention call (forward pre-hooks, independent of
    the code under test)."""
    seen: list[int] = []

    def hook(module, args, kwargs):
        hs = args[0] if args else kwargs["hidden_states"]
        seen.append(int(hs.shape[1]))

    handles = [
        m.register_forward_pre_hook(hook, with_kwargs=True)
        for m in regions.cross_attention_layers(pipe)
    ]
    return seen, handles


# ------------------------------------------------------------------------------ plumbing


@pytest.mark.parametrize("model", ["sd1-tiny", "sdxl-tiny"])
def test_masks_reach_every_cross_attention_resolution_in_order(
    tiny_backend, monkeypatch, model
) -> None:
    spy = Spy(monkeypatch)
    left, right = _box(0, 0, W // 2, H), _box(W // 2, 0, W, H)
    req = _request(model=model, regions=(
        RegionPrompt("green grass", left), RegionPrompt("blue sky", right, "clouds"),
    ))
    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve(model))
    pipe = tiny_backend.manager.variant(loaded, loaded.route("txt2img").pipeline)
    seen, handles = _cross_attention_lengths(pipe)
    try:
        res = tiny_backend.run(req, RecordingContext())
    finally:
        for h in handles:
            h.remove()
    assert res.metadata["regions"] == [
        {"prompt": "green grass", "negative_prompt": ""},
        {"prompt": "blue sky", "negative_prompt": "clouds"},
    ]
    (state,) = spy.states
    assert "RegionalAttnProcessor" in spy.processor_types
    # the masks at work size, in the request's order
    assert state.masks.shape == (2, H, W)
    # (a feathered edge: sigma 4 px, so 12 px either side of the edge is settled)
    assert state.masks[0][:, : W // 2 - 12].min() > 0.99 and state.masks[0][:, W // 2 + 12 :].max() < 0.01
    assert state.masks[1][:, W // 2 + 12 :].min() > 0.99 and state.masks[1][:, : W // 2 - 12].max() < 0.01
    # each region's text states are its own prompt's (negative, positive), in order
    enc = pipe.encode_prompt(prompt="blue sky", device="cpu", num_images_per_prompt=1,
                             do_classifier_free_guidance=True, negative_prompt="clouds")
    torch.testing.assert_close(state.embeds[1][1], enc[0])
    torch.testing.assert_close(state.embeds[1][0], enc[1])
    # every cross-attention call got weights for its own resolution: both UNet levels with
    # cross-attention (latent 8x12 and 4x6), global + 2 regions each
    lh, lw = H // 8, W // 8
    expected = {(lh, lw), (lh // 2, lw // 2)} if model == "sd1-tiny" else {(lh // 2, lw // 2)}
    assert set(spy.sizes) == expected
    assert {n for n, _ in spy.weights} == set(seen) == {h * w for h, w in expected}
    assert all(shape == (3, 1, n, 1) for n, shape in spy.weights)
    assert len(spy.weights) == len(seen)  # one lookup per cross-attention call
    for (_h, w), wts in spy.sizes.items():
        np.testing.assert_allclose(wts.sum(axis=0), 1.0, atol=1e-5)
        assert wts[1][:, : w // 2 - 1].mean() > 0.9 and wts[2][:, w // 2 + 1 :].mean() > 0.9
        assert wts[0].max() < 0.05  # the two regions cover everything: no global prompt


def test_blend_weights_global_elsewhere_overlap_normalised_soft_edge() -> None:
    a = np.zeros((64, 64), np.float32)
    a[:, :40] = 1.0
    b = np.zeros((64, 64), np.float32)
    b[:, 24:48] = 1.0
    wts = regions.blend_weights(np.stack([a, b]), (8, 8))
    np.testing.assert_allclose(wts.sum(axis=0), 1.0, atol=1e-6)
    assert np.allclose(wts[0][:, 6:], 1.0) and np.allclose(wts[0][:, :5], 0.0)  # global outside
    np.testing.assert_allclose(wts[1][:, 3:5], 0.5)  # the overlap is shared
    np.testing.assert_allclose(wts[2][:, 3:5], 0.5)
    # work-size masks have a feathered edge, not a step
    req = _request(regions=(RegionPrompt("x", _box(0, 0, 48, H)),))
    (m,) = regions.work_masks(req, (W, H))
    row = m[H // 2]
    assert row[40] > 0.9 and row[56] < 0.1 and 0.1 < row[48] < 0.9


def test_masks_follow_the_inpaint_crop_and_outpaint_margins() -> None:
    img = np.zeros((H, W, 3), np.uint8)
    mask = _box(40, 10, 60, 30)
    region = _box(48, 0, W, H)
    req = _request(task=Task.INPAINT, image=img, mask=mask, regions=(RegionPrompt("x", region),))
    crop = Rect(32, 0, 64, 64)  # the context rectangle, worked at 128 x 128
    (m,) = regions.work_masks(req, (128, 128), crop)
    assert m.shape == (128, 128)
    assert m[:, :20].max() < 0.01 and m[:, 44:].min() > 0.99  # x 48 of the picture is 32 here
    out = _request(task=Task.OUTPAINT, image=img, outpaint=OutpaintSettings(left=16),
                   regions=(RegionPrompt("x", region),))
    (m,) = regions.work_masks(out, (W + 16, H))  # the grown canvas: the mask moves right
    assert m[:, : 16 + 36].max() < 0.01 and m[:, 16 + 60 :].min() > 0.99


def test_inpaint_job_sees_its_context_region(tiny_backend, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    img = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)
    req = _request(task=Task.INPAINT, image=img, mask=_box(40, 20, 60, 36),
                   regions=(RegionPrompt("a cat", _box(50, 0, W, H)),))
    res = tiny_backend.run(req, RecordingContext())
    x, y, w, h = res.metadata["region"]
    (state,) = spy.states
    ww, wh = res.metadata["work_size"]
    assert state.masks.shape == (1, wh, ww)
    expected = regions.work_masks(req, (ww, wh), Rect(x, y, w, h))
    np.testing.assert_array_equal(state.masks, expected)
    assert res.metadata["regions"] == [{"prompt": "a cat", "negative_prompt": ""}]


# ------------------------------------------------------------------------------- effects


def test_a_region_changes_the_picture_mostly_inside_its_mask(tiny_backend) -> None:
    """Measured on the tiny SD 1.x at 128 px without CFG (guidance 1): a region's change
    is 2.2x as strong inside its mask as away from it, where changing the global prompt
    instead gives 1.5x for the same two areas (the picture's own sensitivity). Random-weight
    self-attention is nearly uniform and spreads part of any change over the whole
    picture, which a trained model's does not, so the margin here is modest."""
    size = 128
    mask = _box(16, 32, 64, 96, size, size)
    inside = mask > 0
    away = np.ones_like(inside)
    away[16:112, :80] = False  # beyond the region's soft edge and the conv reach
    base = dict(width=size, height=size, guidance=1.0, steps=4)
    plain = tiny_backend.run(_request(**base), RecordingContext()).images[0].astype(int)
    region = tiny_backend.run(
        _request(**base, regions=(RegionPrompt("blue sky over mountains", mask),)), RecordingContext()
    ).images[0].astype(int)
    everywhere = tiny_backend.run(
        _request(**base, prompt="blue sky over mountains"), RecordingContext()
    ).images[0].astype(int)
    d = np.abs(region - plain)[..., :3].mean(axis=2)
    g = np.abs(everywhere - plain)[..., :3].mean(axis=2)
    ratio = d[inside].mean() / d[away].mean()
    global_ratio = g[inside].mean() / g[away].mean()
    assert d[inside].mean() > 3.0  # it does change the picture
    assert ratio > 1.8, (ratio, global_ratio)
    assert ratio > 1.25 * global_ratio


@pytest.mark.parametrize("model", ["sd1-tiny", "sdxl-tiny"])
def test_swapped_regions_without_overlap_give_the_same_picture(tiny_backend, model) -> None:
    a = RegionPrompt("green grass", _box(0, 0, 40, H))
    b = RegionPrompt("blue sky", _box(56, 0, W, H), "clouds")
    one = tiny_backend.run(_request(model=model, regions=(a, b)), RecordingContext()).images[0]
    two = tiny_backend.run(_request(model=model, regions=(b, a)), RecordingContext()).images[0]
    none = tiny_backend.run(_request(model=model), RecordingContext()).images[0]
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 1  # float summation order only
    assert np.abs(one.astype(int) - none.astype(int)).max() > 10  # and the regions did act


def test_a_region_with_the_global_prompt_changes_nothing(tiny_backend) -> None:
    plain = tiny_backend.run(_request(), RecordingContext()).images[0]
    same = tiny_backend.run(
        _request(regions=(RegionPrompt("a red fox", _box(0, 0, 48, H)),)), RecordingContext()
    ).images[0]
    assert np.abs(plain.astype(int) - same.astype(int)).max() <= 1


def test_other_processors_are_wrapped_not_replaced(tiny_backend, monkeypatch) -> None:
    """A processor installed before the job (an IP-Adapter's, here a recording one with a
    weight) is called once per prompt, stays registered under its layer during the job,
    and gives the same picture as diffusers' own processor through the fast path."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve("sd1-tiny"))
    unet = loaded.pipe.unet
    calls = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.inner = AttnProcessor2_0()

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                     temb=None):
            calls.append(encoder_hidden_states is not None)
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    req = _request(regions=(RegionPrompt("blue sky", _box(0, 0, 48, H)),))
    fast = tiny_backend.run(req, RecordingContext()).images[0]
    before = dict(unet.attn_processors)
    custom = {name: Recording() if "attn2" in name else p for name, p in before.items()}
    params_seen = []
    real_weights = regions.RegionState.weights

    def weights(state, *a):
        params_seen.append(sum(1 for n, _ in unet.named_parameters() if n.endswith("inner.weight")))
        return real_weights(state, *a)

    monkeypatch.setattr(regions.RegionState, "weights", weights)
    unet.set_attn_processor(dict(custom))  # (diffusers empties the dict it is given)
    try:
        wrapped = tiny_backend.run(req, RecordingContext()).images[0]
        after = dict(unet.attn_processors)
    finally:
        unet.set_attn_processor(dict(before))
    assert all(after[n] is custom[n] for n in custom)  # restored to the custom ones
    cross_layers = sum(1 for n in custom if "attn2" in n)
    assert params_seen and set(params_seen) == {cross_layers}  # weights stayed in the tree
    assert len(calls) == 2 * len(params_seen)  # global + region per cross-attention call
    assert np.abs(fast.astype(int) - wrapped.astype(int)).max() <= 1


def test_regions_compose_with_an_ip_adapter_reference(tiny_models, tmp_path, monkeypatch) -> None:
    """A reference image (IP-Adapter processors, loaded before the regions) and a region
    in one job: the regional wrapper calls the IP-Adapter processor once per prompt, its
    image term passes through the blend unchanged (a region with the global prompt gives
    the reference-only picture), and a region with its own prompt changes the picture."""
    from canvasai.backends.api import ReferenceImage
    from canvasai.backends.models import ModelRegistry

    ta = pytest.importorskip("tests.support.tiny_adapters")
    ta.save_ip_adapter(tiny_models.sd1, tmp_path / "ipadapter" / "ip-adapter_tiny-sd15.safetensors")
    ta.save_clip_vision(tmp_path / "clip_vision" / "tiny-clip-vision.safetensors")
    (tmp_path / "sd1").symlink_to(tiny_models.sd1, target_is_directory=True)
    backend = DiffusersBackend(ModelRegistry([tmp_path], include_hf_cache=False))
    ref = (ReferenceImage(np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8), 1.0),)
    spy = Spy(monkeypatch)
    inners: set[str] = set()
    real_weights = regions.RegionState.weights

    def weights(state, *a):
        for m in regions.cross_attention_layers(state.pipe):
            inners.add(type(getattr(m.processor, "inner", None)).__name__)
        return real_weights(state, *a)

    monkeypatch.setattr(regions.RegionState, "weights", weights)
    base = dict(model=str(tmp_path / "sd1"), references=ref)
    alone = backend.run(_request(**base), RecordingContext())
    same = backend.run(_request(**base, regions=(RegionPrompt("a red fox", _box(0, 0, 48, H)),)),
                       RecordingContext())
    other = backend.run(_request(**base, regions=(RegionPrompt("blue sky", _box(0, 0, 48, H)),)),
                        RecordingContext())
    assert inners == {"IPAdapterAttnProcessor2_0"} and len(spy.states) == 2
    assert same.metadata["reference_method"] == "IP-Adapter" and "regions" in same.metadata
    a, b, c = (r.images[0].astype(int) for r in (alone, same, other))
    assert np.abs(a - b).max() <= 1
    assert np.abs(a - c).max() > 10


def test_sketch_regions_reach_the_controlnet_too(tiny_backend, monkeypatch) -> None:
    from canvasai.backends.api import ControlKind, ControlSettings

    spy = Spy(monkeypatch)
    found: list = []
    pipes: list = []
    real_layers = regions.cross_attention_layers
    monkeypatch.setattr(regions, "cross_attention_layers",
                        lambda pipe: pipes.append(pipe) or found.extend(real_layers(pipe)) or found)
    sketch = np.full((H, W, 3), 255, np.uint8)
    sketch[30:34, 10:80] = 0
    base = dict(task=Task.SKETCH, controls=(ControlSettings(ControlKind.SCRIBBLE, sketch),),
                width=W, height=H)
    plain = tiny_backend.run(_request(**base), RecordingContext()).images[0].astype(int)
    res = tiny_backend.run(_request(**base, regions=(RegionPrompt("blue sky", _box(0, 0, 48, H)),)),
                           RecordingContext())
    (pipe,) = pipes
    in_controlnet = [m for m in found if any(m is x for x in pipe.controlnet.modules())]
    assert len(found) == 6 and len(in_controlnet) == 2  # UNet 4 + ControlNet 2 layers
    assert len(spy.weights) == 3 * len(found)  # every layer, every step (DDIM: 3)
    assert res.metadata["regions"] and np.abs(res.images[0].astype(int) - plain).max() > 10


# ------------------------------------------------------------------------ restore, cancel


def test_processors_restored_after_the_job(tiny_backend) -> None:
    before = _processors(tiny_backend, "sd1-tiny")
    tiny_backend.run(_request(regions=(RegionPrompt("sky", _box(0, 0, 48, H)),)), RecordingContext())
    after = _processors(tiny_backend, "sd1-tiny")
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


@pytest.mark.parametrize("how", ["cancel", "error"])
def test_processors_restored_after_a_cancelled_or_failed_job(tiny_backend, monkeypatch, how) -> None:
    spy = Spy(monkeypatch)
    before = _processors(tiny_backend, "sd1-tiny")
    req = _request(steps=6, regions=(RegionPrompt("sky", _box(0, 0, 48, H)),))
    if how == "cancel":
        ctx = RecordingContext(cancel_after=1)
        with pytest.raises(JobCancelled):
            tiny_backend.run(req, ctx)
        assert len(ctx.progress_calls) == 1
    else:
        real = regions.RegionState.weights_at

        def boom(state, *a):
            real(state, *a)
            raise RuntimeError("boom")

        monkeypatch.setattr(regions.RegionState, "weights_at", boom)
        with pytest.raises(RuntimeError, match="boom"):
            tiny_backend.run(req, RecordingContext())
    assert "RegionalAttnProcessor" in spy.processor_types  # they were installed
    after = _processors(tiny_backend, "sd1-tiny")
    assert all(after[k] is before[k] for k in before)


def test_processors_set_during_the_job_go_inside_and_stay(tiny_backend) -> None:
    """E.g. attention slicing after running out of memory, or an adapter loaded mid-job:
    the regions keep applying around the new processor, which stays after the job."""
    from diffusers.models.attention_processor import AttnProcessor, IPAdapterAttnProcessor2_0

    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve("sd1-tiny"))
    pipe = tiny_backend.manager.variant(loaded, "txt2img")
    req = _request(regions=(RegionPrompt("sky", _box(0, 0, 48, H)),))
    before = dict(pipe.unet.attn_processors)
    try:
        with regions.applied(pipe, loaded, req, (W, H)) as state:
            assert state is not None
            pipe.unet.set_attn_processor(AttnProcessor())
            cross = regions.cross_attention_layers(pipe)
            assert all(type(m.processor).__name__ == "RegionalAttnProcessor" for m in cross)
            assert all(type(m.processor.inner) is AttnProcessor for m in cross)
            # a module processor (with weights) goes in registered, and out again
            ip = IPAdapterAttnProcessor2_0(hidden_size=32, cross_attention_dim=32)
            cross[0].set_processor(ip)
            assert any(p is ip.to_k_ip[0].weight for p in pipe.unet.parameters())
            cross[0].set_processor(AttnProcessor())
        assert all(type(p) is AttnProcessor for p in pipe.unet.attn_processors.values())
        assert all("set_processor" not in m.__dict__ for m in cross)
    finally:
        pipe.unet.set_attn_processor(dict(before))


def test_out_of_memory_step_down_keeps_the_regions(tiny_registry, monkeypatch) -> None:
    """The second step-down enables attention slicing mid-job; the retry still follows
    the regions: the picture of a job that had slicing on from the start."""
    req = _request(regions=(RegionPrompt("blue sky", _box(0, 0, 48, H)),))
    backend = DiffusersBackend(tiny_registry)  # own pipelines: degraded settings stay local
    loaded = backend.manager.load(tiny_registry.resolve("sd1-tiny"))
    real = loaded.pipe.unet.forward
    calls = []

    def forward(*a, **k):
        calls.append(1)
        if len(calls) <= 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)

    monkeypatch.setattr(loaded.pipe.unet, "forward", forward)
    ctx = RecordingContext()
    res = backend.run(req, ctx)
    assert "attention slicing" in ctx.notes[1]
    procs = loaded.pipe.unet.attn_processors.values()
    assert {type(p).__name__ for p in procs} == {"SlicedAttnProcessor"}  # slicing stays
    # the same job again, slicing (and VAE tiling) on from the start, with and without regions
    monkeypatch.setattr(loaded.pipe.unet, "forward", real)
    expected = backend.run(req, RecordingContext()).images[0].astype(int)
    plain = backend.run(_request(), RecordingContext()).images[0].astype(int)
    got = res.images[0].astype(int)
    assert np.abs(got - expected).max() <= 1
    assert np.abs(got - plain).max() > 10


# ---------------------------------------------------------------------------- families


def test_which_families_support_regions() -> None:
    support = {f.name: f.supports_regions for f in families.ALL}
    assert support["sd1"] and support["sd2"] and support["sdxl"]
    for name in ("flux", "flux2", "sd3", "zimage", "qwen", "chroma"):
        assert support[name] is False, name


def test_dit_family_ignores_regions_and_says_so(tmp_path_factory) -> None:
    """Flux (and the other DiTs) run the job with the global prompt and note it."""
    tf = pytest.importorskip("tests.support.tiny_families")
    from canvasai.backends.models import ModelRegistry

    root = tmp_path_factory.mktemp("regions-dit")
    folder = tf.cached("flux", root)
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    base = dict(model=str(folder), width=64, height=48, steps=2, scheduler="default")
    plain = backend.run(_request(**base), RecordingContext())
    region = backend.run(
        _request(**base, regions=(RegionPrompt("blue sky", _box(0, 0, 32, 48, 64, 48)),)),
        RecordingContext(),
    )
    np.testing.assert_array_equal(plain.images[0], region.images[0])
    assert "regional prompts ignored: Flux.1 models do not support them yet" in region.metadata["note"]
    assert region.metadata["regions_ignored"] == [{"prompt": "blue sky", "negative_prompt": ""}]
    assert "regions" not in region.metadata and "note" not in plain.metadata


def test_tasks_that_do_not_use_regions_say_so(tiny_backend) -> None:
    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve("sd1-tiny"))
    img = np.zeros((H, W, 3), np.uint8)
    region = (RegionPrompt("sky", _box(0, 0, 48, H)),)
    notes, meta = regions.describe(_request(task=Task.UPSCALE, image=img, regions=region), loaded)
    assert notes == ["regional prompts are not used by upscale"] and "regions_ignored" in meta
    notes, meta = regions.describe(_request(task=Task.IMG2IMG, image=img, regions=region), loaded)
    assert notes == [] and meta == {"regions": [{"prompt": "sky", "negative_prompt": ""}]}
    assert regions.describe(_request(), loaded) == ([], {})
