"""Live-painting frames (request.live) through router -> DiffusersBackend with tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, Task
from canvasai.backends.diffusion import live
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.models import ModelRegistry
from canvasai.backends.router import backend_for
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")

W, H = 72, 56  # not multiples of 16: the frame comes back at the request's size


def _image(seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, (H, W, 4), dtype=np.uint8)
    img[..., 3] = 255
    img[:8, :8, 3] = 90  # alpha goes back unchanged
    return img


def _req(**kw) -> GenerationRequest:
    kw.setdefault("task", Task.IMG2IMG)
    kw.setdefault("model", "sd1-tiny")
    kw.setdefault("prompt", "a red fox")
    kw.setdefault("negative_prompt", "blurry")
    kw.setdefault("steps", 2)
    kw.setdefault("strength", 0.6)
    kw.setdefault("seed", 11)
    kw.setdefault("scheduler", "euler")
    if kw["task"] == Task.IMG2IMG:
        kw.setdefault("image", _image())
    kw.setdefault("live", True)
    return GenerationRequest(**kw)


def _run(backend, request, ctx=None):
    return backend.run(request, ctx or RecordingContext())


@pytest.fixture(scope="module")
def backend_without_taesd(tiny_models, tmp_path_factory):
    """A backend over a models folder holding the tiny SD 1.x and SDXL but no TAESD."""
    root = tmp_path_factory.mktemp("no-taesd")
    for folder in (tiny_models.sd1, tiny_models.sdxl):
        (root / folder.name).symlink_to(folder, target_is_directory=True)
    return DiffusersBackend(ModelRegistry([root], include_hf_cache=False))


@pytest.fixture
def text_encoder_calls(tiny_settings):
    """Counts forward passes of the tiny SD 1.x text encoder (the work the cache saves)."""
    backend = backend_for(_req(), tiny_settings)
    _run(backend, _req())  # loaded, the cache filled
    pipe = backend.manager.load(backend.resolve(_req())).pipe
    calls = []
    handle = pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    yield backend, calls
    handle.remove()


def test_same_request_twice_gives_the_same_frame(tiny_settings) -> None:
    backend = backend_for(_req(), tiny_settings)
    ctx = RecordingContext()
    a = _run(backend, _req(), ctx)
    b = _run(backend, _req())
    (frame,) = a.images
    assert frame.shape == (H, W, 4) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, b.images[0])
    np.testing.assert_array_equal(frame[..., 3], _image()[..., 3])
    m = a.metadata
    assert m["live"] is True and m["decoder"] == live.TAESD_DECODER  # tiny TAESD installed
    assert m["seed"] == 11 and m["steps"] == 2 and m["size"] == [W, H]
    assert ctx.previews == []  # no per-step previews: the frame is the preview
    # progress (and the cancel check) still per step: strength 0.6 of 2 steps runs 1
    assert ctx.progress_calls == [(1, 1)]
    other = _run(backend, _req(image=_image(seed=5)))
    assert not np.array_equal(other.images[0], frame)  # a changed canvas changes the frame


def test_prompt_embeddings_are_kept_until_the_prompt_changes(text_encoder_calls) -> None:
    backend, calls = text_encoder_calls
    state = live.state(backend.manager)
    hits = state.hits

    again = _run(backend, _req(image=_image(seed=3)))  # a stroke: only the picture changed
    assert calls == [] and again.metadata["prompt_cache"] == "hit"
    assert state.hits == hits + 1

    changed = _run(backend, _req(prompt="a blue fox"))
    assert len(calls) == 2  # prompt and negative encoded again (CFG)
    assert changed.metadata["prompt_cache"] == "miss"
    calls.clear()
    _run(backend, _req(prompt="a blue fox", negative_prompt="dark"))
    assert len(calls) == 2  # the negative prompt is part of the key
    calls.clear()
    no_cfg = _run(backend, _req(prompt="a blue fox", negative_prompt="dark", guidance=1.0))
    assert len(calls) == 1 and no_cfg.metadata["prompt_cache"] == "miss"  # no negative pass

    spy_calls = []
    original = live.cached_prompt

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        spy_calls.append(out[1])
        return out

    live.cached_prompt = spy
    try:
        _run(backend, _req(prompt="a blue fox", negative_prompt="dark", guidance=1.0))
    finally:
        live.cached_prompt = original
    assert spy_calls == ["hit"]


def test_prompt_cache_off_for_a_non_live_job(text_encoder_calls) -> None:
    backend, calls = text_encoder_calls
    res = _run(backend, _req(live=False))
    assert len(calls) == 2 and "prompt_cache" not in res.metadata


@pytest.mark.parametrize(("model", "sampler"), [("sd1-tiny", "euler"), ("sd1-tiny", "default"),
                                               ("sdxl-tiny", "euler_a")])
def test_without_tiny_autoencoder_the_live_frame_is_the_full_result(
    backend_without_taesd, model, sampler
) -> None:
    """The full VAE decodes, and the cached embeddings are the pipeline's own and the kept
    sampler starts afresh: a live frame (the second one, with everything kept) equals the
    live=False result bit for bit (SDXL: pooled embeddings too)."""
    request = _req(model=model, scheduler=sampler, steps=4)
    _run(backend_without_taesd, _req(model=model, scheduler=sampler, steps=4, image=_image(9)))
    frame = _run(backend_without_taesd, request)
    assert frame.metadata["decoder"] == live.VAE_DECODER and frame.metadata["prompt_cache"] == "hit"
    full = _run(backend_without_taesd, dataclasses.replace(request, live=False))
    np.testing.assert_array_equal(frame.images[0], full.images[0])
    assert frame.metadata["sampler"] == full.metadata["sampler"]
    txt = _run(backend_without_taesd, _req(model=model, task=Task.TXT2IMG, width=W, height=H))
    assert txt.images[0].shape == (H, W, 4) and txt.metadata["decoder"] == live.VAE_DECODER


def test_apply_rerun_gives_a_full_vae_result_of_the_same_shape(tiny_settings) -> None:
    backend = backend_for(_req(), tiny_settings)
    request = _req()
    frame = _run(backend, request)
    full = _run(backend, dataclasses.replace(request, live=False))
    assert full.images[0].shape == frame.images[0].shape
    assert "decoder" not in full.metadata and full.metadata["preview"] == "taesd"
    assert full.seeds == frame.seeds
    # the tiny autoencoder approximates the VAE: same picture, not the same bytes
    assert not np.array_equal(full.images[0], frame.images[0])


def test_live_txt2img_with_tiny_autoencoder(tiny_settings) -> None:
    backend = backend_for(_req(), tiny_settings)
    res = _run(backend, _req(task=Task.TXT2IMG, width=W, height=H))
    assert res.images[0].shape == (H, W, 4) and res.metadata["decoder"] == live.TAESD_DECODER
    assert res.metadata["task"] == "txt2img"


def test_cancel_stops_a_live_job_at_a_step(tiny_settings) -> None:
    from canvasai.core.errors import JobCancelled

    backend = backend_for(_req(), tiny_settings)
    ctx = RecordingContext(cancel_after=1)
    with pytest.raises(JobCancelled):
        _run(backend, _req(steps=4), ctx)
    assert len(ctx.progress_calls) == 1


def test_sampler_kept_between_live_jobs_and_made_again_after_another_job(tiny_settings) -> None:
    backend = backend_for(_req(), tiny_settings)
    a = _run(backend, _req())
    pipe = backend.manager.variant(backend.manager.load(backend.resolve(_req())), "img2img")
    kept = pipe.scheduler
    b = _run(backend, _req(image=_image(4)))
    assert pipe.scheduler is kept and a.metadata["sampler"] == b.metadata["sampler"]
    _run(backend, _req(live=False))  # an ordinary job sets its own
    c = _run(backend, _req(scheduler="euler_a"))
    assert pipe.scheduler is not kept and "euler_a" in c.metadata["sampler"]
    np.testing.assert_array_equal(_run(backend, _req(scheduler="euler_a")).images[0], c.images[0])


def test_tuning_only_on_cuda(tiny_settings) -> None:
    backend = backend_for(_req(), tiny_settings)
    res = _run(backend, _req())
    assert backend.manager.device.device != "cuda" and "live_tuning" not in res.metadata


def test_prompt_cache_follows_the_active_loras(tiny_models, tmp_path, text_encoder_calls) -> None:
    from canvasai.backends.loras import LoraSpec
    from tests.support.tiny_loras import save_unet_lora

    backend, calls = text_encoder_calls
    lora = save_unet_lora(tiny_models.sd1, tmp_path / "ink.safetensors", seed=3)
    try:
        caches = [_run(backend, _req(loras=(LoraSpec(str(lora), w),))).metadata["prompt_cache"]
                  for w in (0.8, 0.8, 0.5)]
        assert caches == ["miss", "hit", "miss"]  # a LoRA (or its weight) may change the encoder
        assert _run(backend, _req()).metadata["prompt_cache"] == "miss"  # LoRAs off again
    finally:
        _run(backend, _req(live=False))  # leave the shared model without active LoRAs


def test_flux_prompt_embeddings_are_kept_and_give_the_same_frame(tmp_path_factory) -> None:
    """Flux.1 (CLIP pooled + T5): the kept embeddings are the pipeline's own; without a
    TAEF1 the VAE decodes, so the live frame equals the live=False result."""
    tf = pytest.importorskip("tests.support.tiny_families")
    root = tmp_path_factory.mktemp("flux-live")
    tf.cached("flux", root)
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    image = np.random.default_rng(1).integers(0, 256, (32, 48, 4), dtype=np.uint8)
    request = _req(model="flux", image=image, negative_prompt="", steps=4, guidance=3.5,
                   scheduler="default")
    first = _run(backend, request)
    again = _run(backend, request)
    assert (first.metadata["prompt_cache"], again.metadata["prompt_cache"]) == ("miss", "hit")
    assert again.metadata["decoder"] == live.VAE_DECODER
    full = _run(backend, dataclasses.replace(request, live=False))
    np.testing.assert_array_equal(again.images[0], full.images[0])
    assert again.images[0].shape == (32, 48, 4)


def test_live_frame_with_a_control_layer_says_the_vae_decoded_it(tiny_settings, tiny_models) -> None:
    from canvasai.backends.api import ControlKind, ControlSettings

    sketch = np.full((H, W, 3), 255, np.uint8)
    sketch[20:24, 8:60] = 0
    control = ControlSettings(ControlKind.SCRIBBLE, sketch, model=str(tiny_models.controlnet_scribble),
                              preprocess=False)
    backend = backend_for(_req(), tiny_settings)
    res = _run(backend, _req(controls=(control,)))
    assert res.metadata["live"] is True and res.metadata["decoder"] == live.VAE_DECODER
    assert res.images[0].shape == (H, W, 4) and "ControlNet" in res.metadata["pipeline"]
