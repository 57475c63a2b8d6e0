"""Every diffusion task through router -> DiffusersBackend with tiny random models."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.api import (
    BlendSettings,
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    Task,
    UpscaleSettings,
)
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.diffusion.upscale import ramp, tile_starts, tiles
from canvasai.backends.router import backend_for
from canvasai.core.errors import GenerationError, JobCancelled, ModelError
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")

W, H = 96, 64


def _image(seed: int = 0, alpha: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (H, W, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        img[..., 3] = 200
    return img


def _mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[20:36, 40:60] = 255
    return m


def _run(settings, ctx=None, **kw) -> tuple:
    kw.setdefault("steps", 3)
    kw.setdefault("seed", 7)
    kw.setdefault("prompt", "a red fox")
    req = GenerationRequest(**kw)
    ctx = ctx or RecordingContext()
    backend = backend_for(req, settings)
    return backend.run(req, ctx), ctx


def _assert_previews_in_order(ctx: RecordingContext, shape: tuple[int, ...]) -> None:
    steps = [s for s, _ in ctx.previews]
    assert steps == sorted(steps) and len(steps) == len(ctx.progress_calls)
    assert steps == [s for s, _ in ctx.progress_calls]
    assert all(f.shape == shape and f.dtype == np.uint8 for _, f in ctx.previews)
    last, total = ctx.progress_calls[-1]
    assert last == total


def test_txt2img_size_previews_metadata(tiny_settings) -> None:
    res, ctx = _run(tiny_settings, task=Task.TXT2IMG, model="sd1-tiny", width=W, height=60)
    (img,) = res.images
    assert img.shape == (60, W, 4) and (img[..., 3] == 255).all()
    assert res.seeds == (7,)
    _assert_previews_in_order(ctx, (60, W, 4))
    m = res.metadata
    assert m["prompt"] == "a red fox" and m["model"] == "sd1-tiny" and m["task"] == "txt2img"
    assert m["seed"] == 7 and m["steps"] == 3 and m["size"] == [W, 60]
    assert m["preview"] == "taesd"  # the tiny TAESD is installed in the registry
    assert "PNDM" in m["sampler"]


def test_deterministic_per_seed_and_batch_items(tiny_settings) -> None:
    a, _ = _run(tiny_settings, task=Task.TXT2IMG, model="sd1-tiny", width=64, height=64)
    b, _ = _run(tiny_settings, task=Task.TXT2IMG, model="sd1-tiny", width=64, height=64)
    np.testing.assert_array_equal(a.images[0], b.images[0])
    batch, ctx = _run(
        tiny_settings,
        task=Task.TXT2IMG,
        model="sd1-tiny",
        width=64,
        height=64,
        batch_size=2,
        scheduler="euler_a",
    )
    assert batch.seeds == (7, 8)
    assert not np.array_equal(batch.images[0], batch.images[1])
    alone, _ = _run(
        tiny_settings,
        task=Task.TXT2IMG,
        model="sd1-tiny",
        width=64,
        height=64,
        seed=8,
        scheduler="euler_a",
    )
    np.testing.assert_array_equal(batch.images[1], alone.images[0])
    steps = [s for s, _ in ctx.progress_calls]
    assert steps == list(range(1, 7)) and ctx.progress_calls[-1] == (6, 6)


def test_scheduler_swap_uses_base_config(tiny_backend, tiny_settings) -> None:
    _run(
        tiny_settings,
        task=Task.TXT2IMG,
        model="sd1-tiny",
        width=64,
        height=64,
        scheduler="dpmpp_2m_karras",
    )
    res, ctx = _run(
        tiny_settings,
        task=Task.TXT2IMG,
        model="sd1-tiny",
        width=64,
        height=64,
        scheduler="dpmpp_2m",
    )
    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve("sd1-tiny"))
    pipe = loaded.variants[("StableDiffusionPipeline", "")]
    assert not pipe.scheduler.config.get("use_karras_sigmas")  # no carry-over
    assert len(ctx.progress_calls) == 3  # N callbacks for DPM++ (PNDM fires N+1)
    with pytest.raises(GenerationError, match="Unknown sampler"):
        _run(tiny_settings, task=Task.TXT2IMG, model="sd1-tiny", scheduler="magic")


def test_img2img_keeps_size_and_alpha(tiny_settings) -> None:
    img = _image()
    res, ctx = _run(
        tiny_settings, task=Task.IMG2IMG, model="sd1-tiny", image=img, strength=0.6, steps=4
    )
    assert res.images[0].shape == img.shape
    np.testing.assert_array_equal(res.images[0][..., 3], img[..., 3])
    assert res.metadata["strength"] == 0.6
    _assert_previews_in_order(ctx, img.shape)


@pytest.mark.parametrize("model", ["sd1-tiny-inpaint", "sd1-tiny"])
def test_inpaint_outside_mask_untouched(tiny_settings, model: str) -> None:
    from canvasai.backends import masking

    img, mask = _image(1), _mask()
    res, ctx = _run(
        tiny_settings,
        task=Task.INPAINT,
        model=model,
        image=img,
        mask=mask,
        blend=BlendSettings(grow_px=0, feather_px=4),
    )
    out = res.images[0]
    assert out.shape == img.shape
    alpha = masking.feather_mask(mask, 0, 4)
    outside = alpha == 0
    np.testing.assert_array_equal(out[outside], img[outside])
    assert not np.array_equal(out[mask > 0], img[mask > 0])
    _assert_previews_in_order(ctx, img.shape)
    if model == "sd1-tiny":
        assert "mask-blend" in res.metadata["note"] and not res.metadata["inpaint_model"]
    else:
        assert res.metadata["inpaint_model"] and "note" not in res.metadata


def test_inpaint_native_resolution_scales_region(tiny_settings) -> None:
    img, mask = _image(2), _mask()
    res, _ = _run(tiny_settings, task=Task.INPAINT, model="sd1-tiny-inpaint", image=img, mask=mask)
    # the tiny model's native size is 64 px (sample_size 8 x VAE factor 8)
    w, h = res.metadata["work_size"]
    assert w % 8 == 0 and h % 8 == 0 and abs(w * h - 64 * 64) <= 64 * 16
    res2, _ = _run(
        tiny_settings,
        task=Task.INPAINT,
        model="sd1-tiny-inpaint",
        image=img,
        mask=mask,
        native_resolution=False,
    )
    rx, ry, rw, rh = res2.metadata["region"]
    assert res2.metadata["work_size"] == [rw, rh]


def test_empty_mask_is_an_error(tiny_settings) -> None:
    with pytest.raises(GenerationError, match="empty"):
        _run(
            tiny_settings,
            task=Task.INPAINT,
            model="sd1-tiny-inpaint",
            image=_image(),
            mask=np.zeros((H, W), np.uint8),
        )


def test_outpaint_grows_canvas_and_keeps_original(tiny_models, tiny_settings) -> None:
    img = _image(3)
    res, ctx = _run(
        tiny_settings,
        task=Task.OUTPAINT,
        model="sd1-tiny-inpaint",
        image=img,
        outpaint=OutpaintSettings(left=16, bottom=8, prefill="blur"),
        blend=BlendSettings(grow_px=0, feather_px=4),
    )
    out = res.images[0]
    assert out.shape == (H + 8, W + 16, 4)
    # original pixels beyond the feather width from the new area are byte-identical
    np.testing.assert_array_equal(out[: H - 4, 16 + 4 :], img[: H - 4, 4:])
    assert res.metadata["margins"] == [16, 0, 0, 8]
    _assert_previews_in_order(ctx, out.shape)


def test_sketch_scribble_picks_controlnet_by_kind(tiny_settings) -> None:
    sketch = np.full((H, W, 3), 255, np.uint8)
    sketch[30:34, 10:80] = 0
    res, ctx = _run(
        tiny_settings,
        task=Task.SKETCH,
        model="sd1-tiny",
        controls=(ControlSettings(ControlKind.SCRIBBLE, sketch),),
    )
    assert res.images[0].shape == (H, W, 4)
    assert res.metadata["controlnet"] == "controlnet/sd1-tiny-controlnet-scribble"
    _assert_previews_in_order(ctx, (H, W, 4))


def test_sketch_depth_explicit_controlnet_notes_proxy(tiny_models, tiny_settings) -> None:
    res, _ = _run(
        tiny_settings,
        task=Task.SKETCH,
        model="sd1-tiny-inpaint",
        controls=(ControlSettings(
            ControlKind.DEPTH, _image(4), model=str(tiny_models.controlnet_scribble)
        ),),
    )
    assert "proxy" in res.metadata["note"]


def test_sketch_without_matching_controlnet_fails_clearly(tiny_settings) -> None:
    with pytest.raises(ModelError, match="No lineart ControlNet"):
        _run(
            tiny_settings,
            task=Task.SKETCH,
            model="sd1-tiny",
            controls=(ControlSettings(ControlKind.LINEART, _image()),),
        )


def test_sketch_with_mask_keeps_outside(tiny_models, tiny_settings) -> None:
    from canvasai.backends import masking

    img, mask = _image(5), _mask()
    res, _ = _run(
        tiny_settings,
        task=Task.SKETCH,
        model="sd1-tiny-inpaint",
        image=img,
        mask=mask,
        controls=(ControlSettings(
            ControlKind.CANNY, _image(6), model=str(tiny_models.controlnet_scribble)
        ),),
    )
    outside = masking.paste_alpha(mask, BlendSettings()) == 0
    np.testing.assert_array_equal(res.images[0][outside], img[outside])


def test_upscale_x4_model(tiny_settings) -> None:
    img = _image(7)[:16, :24]  # the x4 UNet works at the input resolution: keep it small
    res, ctx = _run(
        tiny_settings,
        task=Task.UPSCALE,
        model="sd-x4-upscaler-tiny",
        image=img,
        steps=2,
        upscale=UpscaleSettings(scale=4),
    )
    assert res.images[0].shape == (64, 96, 4)
    assert res.metadata["method"] == "x4-upscaler"
    _assert_previews_in_order(ctx, (64, 96, 4))
    res2, _ = _run(
        tiny_settings,
        task=Task.UPSCALE,
        model="sd-x4-upscaler-tiny",
        image=img,
        steps=2,
        upscale=UpscaleSettings(scale=2),
    )
    assert res2.images[0].shape == (32, 48, 4) and "2x" in res2.metadata["note"]


def test_upscale_tiled_refine(tiny_settings) -> None:
    img = _image(8)[:40, :48]
    res, ctx = _run(
        tiny_settings,
        task=Task.UPSCALE,
        model="sd1-tiny",
        image=img,
        steps=2,
        upscale=UpscaleSettings(scale=2, tile=64, overlap=16, refine_strength=0.5),
    )
    assert res.images[0].shape == (80, 96, 4)
    assert res.metadata["tiles"] == 4
    np.testing.assert_array_equal(res.images[0][..., 3], np.full((80, 96), 200, np.uint8))
    _assert_previews_in_order(ctx, (80, 96, 4))


def test_tile_layout_and_ramps_blend_without_seams() -> None:
    assert tile_starts(100, 64, 16) == [0, 36]
    assert tile_starts(40, 64, 16) == [0]
    boxes = tiles(200, 120, 64, 16)
    cover = np.zeros((120, 200), int)
    for x, y, w, h in boxes:
        cover[y : y + h, x : x + w] += 1
    assert cover.min() >= 1
    # along one axis with exact overlap, the two ramps sum to 1: a linear cross-fade
    a = ramp(64, 16, before=False, after=True)
    b = ramp(64, 16, before=True, after=False)
    np.testing.assert_allclose(a[48:] + b[:16], 1.0)
    assert (np.diff(a[48:]) < 0).all() and a[:48].min() == 1.0


def test_single_file_matches_folder(tiny_models, tiny_settings) -> None:
    kw = dict(task=Task.TXT2IMG, width=64, height=64)
    folder, _ = _run(tiny_settings, model=str(tiny_models.sd1), **kw)
    single, _ = _run(tiny_settings, model=str(tiny_models.sd1_file), **kw)
    np.testing.assert_array_equal(folder.images[0], single.images[0])
    named, _ = _run(tiny_settings, model="single/sd1-tiny-single", **kw)
    np.testing.assert_array_equal(folder.images[0], named.images[0])


@pytest.mark.parametrize(
    ("model_attr", "task", "message"),
    [
        ("controlnet_scribble", Task.TXT2IMG, "is a ControlNet"),
        ("taesd", Task.TXT2IMG, "not a main model"),
        ("upscaler", Task.INPAINT, "can only be used to upscale"),
    ],
)
def test_wrong_kind_of_model_fails_clearly(tiny_models, tiny_settings, model_attr, task, message):
    req = GenerationRequest(
        task, model=str(getattr(tiny_models, model_attr)), image=_image(), mask=_mask()
    )
    with pytest.raises(ModelError, match=message):
        backend_for(req, tiny_settings)


def test_unknown_model_name(tiny_settings) -> None:
    with pytest.raises(ModelError, match="Unknown model"):
        backend_for(GenerationRequest(Task.TXT2IMG, model="sd-turbo-9000"), tiny_settings)


def test_cancel_stops_within_a_step_without_decoding(tiny_backend, tiny_settings, monkeypatch):
    loaded = tiny_backend.manager.load(tiny_backend.registry.resolve("sd1-tiny"))
    decodes = []
    real_decode = loaded.pipe.vae.decode
    monkeypatch.setattr(
        loaded.pipe.vae, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k)
    )
    ctx = RecordingContext(cancel_after=2)
    with pytest.raises(JobCancelled):
        _run(
            tiny_settings,
            ctx=ctx,
            task=Task.TXT2IMG,
            model="sd1-tiny",
            width=64,
            height=64,
            steps=10,
        )
    assert [s for s, _ in ctx.progress_calls] == [1, 2]
    assert decodes == []


def _oom_once(unet, monkeypatch, times: int) -> list[int]:
    calls = []
    real = unet.forward

    def forward(*a, **k):
        calls.append(1)
        if len(calls) <= times:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)

    monkeypatch.setattr(unet, "forward", forward)
    return calls


def test_out_of_memory_steps_down(tiny_registry, monkeypatch) -> None:
    backend = DiffusersBackend(tiny_registry)  # own pipelines: degraded settings stay local
    loaded = backend.manager.load(tiny_registry.resolve("sd1-tiny"))
    _oom_once(loaded.pipe.unet, monkeypatch, times=2)
    ctx = RecordingContext()
    req = GenerationRequest(Task.TXT2IMG, model="sd1-tiny", steps=2, seed=1, width=64, height=64)
    res = backend.run(req, ctx)
    assert res.images[0].shape == (64, 64, 4)
    assert ctx.notes[0].startswith("out of memory: freed caches")
    assert "VAE tiling" in ctx.notes[1]
    assert loaded.pipe.vae.use_tiling
    assert "memory savers" in res.metadata["note"]


def test_out_of_memory_final_failure_is_clear(tiny_registry, monkeypatch) -> None:
    backend = DiffusersBackend(tiny_registry)
    loaded = backend.manager.load(tiny_registry.resolve("sd1-tiny"))
    _oom_once(loaded.pipe.unet, monkeypatch, times=99)
    req = GenerationRequest(Task.TXT2IMG, model="sd1-tiny", steps=2, seed=1, width=64, height=64)
    with pytest.raises(GenerationError, match="Out of memory even after"):
        backend.run(req, RecordingContext())


def test_sdxl_family_txt2img_img2img_inpaint(tiny_settings) -> None:
    from canvasai.backends import masking

    res, ctx = _run(tiny_settings, task=Task.TXT2IMG, model="sdxl-tiny", width=W, height=H)
    assert res.images[0].shape == (H, W, 4) and res.metadata["family"] == "sdxl"
    assert res.metadata["preview"] == "latent-linear"  # the tiny TAESD is registered as SD 1.x
    _assert_previews_in_order(ctx, (H, W, 4))
    img, mask = _image(9), _mask()
    res, _ = _run(
        tiny_settings, task=Task.IMG2IMG, model="sdxl-tiny", image=img, strength=0.5, steps=4
    )
    assert res.images[0].shape == img.shape
    res, _ = _run(tiny_settings, task=Task.INPAINT, model="sdxl-tiny", image=img, mask=mask)
    outside = masking.paste_alpha(mask, BlendSettings()) == 0
    np.testing.assert_array_equal(res.images[0][outside], img[outside])


def test_previews_off_means_no_preview_work(tiny_settings) -> None:
    res, ctx = _run(
        tiny_settings, task=Task.TXT2IMG, model="sd1-tiny", width=64, height=64, previews=False
    )
    assert ctx.previews == [] and len(ctx.progress_calls) == 4  # PNDM: N + 1 callbacks
    throttled = RecordingContext(previews=False)  # wants_preview() says no: nothing decoded
    _run(tiny_settings, ctx=throttled, task=Task.TXT2IMG, model="sd1-tiny", width=64, height=64)
    assert throttled.previews == []


def test_damaged_weights_give_model_error(tiny_models, tmp_path) -> None:
    import shutil

    from canvasai.backends.models import ModelRegistry

    broken = tmp_path / "broken-sd"
    shutil.copytree(tiny_models.sd1, broken)
    (weights,) = (broken / "unet").glob("*.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # an interrupted copy
    backend = DiffusersBackend(ModelRegistry([], include_hf_cache=False))
    req = GenerationRequest(Task.TXT2IMG, model=str(broken), steps=1, seed=1, width=64, height=64)
    with pytest.raises(ModelError, match="Could not load broken-sd"):
        backend.run(req, RecordingContext())
