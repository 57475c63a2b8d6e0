"""ClassicBackend: OpenCV inpaint/outpaint/upscale, byte-exact outside the mask, honest metadata."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from canvasai.backends.api import (
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    Task,
    UpscaleSettings,
    with_seed,
)
from canvasai.backends.classic import ClassicBackend, inpaint_radius
from canvasai.core.errors import GenerationError, JobCancelled
from canvasai.generation.runner import SyncContext


def gradient(h: int, w: int, channels: int = 3) -> np.ndarray:
    ys, xs = np.mgrid[:h, :w]
    img = np.stack([xs * 255 // max(w - 1, 1), ys * 255 // max(h - 1, 1), (xs + ys) % 256], -1)
    if channels == 4:
        img = np.concatenate([img, (xs * 3 % 256)[..., None]], -1)
    return img.astype(np.uint8)


class Ctx(SyncContext):
    """A SyncContext that records progress and previews."""

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.frames: list[np.ndarray] = []
        super().__init__(
            on_progress=lambda s, t: self.steps.append((s, t)),
            on_preview=lambda s, f: self.frames.append(f),
            cancel_event=cancel,
        )


def run(request: GenerationRequest, ctx: Ctx | None = None):
    ctx = ctx or Ctx()
    return ClassicBackend().run(with_seed(request), ctx), ctx  # the service seeds requests


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("channels", [3, 4])
def test_inpaint_changes_only_masked_pixels(method, channels):
    img = gradient(120, 160, channels)
    img[50:60, 70:90, :3] = (255, 0, 255)  # an object to remove
    mask = np.zeros((120, 160), np.uint8)
    mask[45:65, 65:95] = 255
    res, ctx = run(
        GenerationRequest(Task.INPAINT, image=img, mask=mask, classic_method=method, seed=3)
    )
    out = res.images[0]
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], img[..., 3])  # alpha kept everywhere
    # the magenta object is gone: filled pixels look like the gradient around them
    assert np.abs(out[55, 80, :3].astype(int) - gradient(120, 160)[55, 80]).max() < 60
    assert res.metadata["backend"] == "classic" and res.metadata["method"] == method
    assert "no AI model" in res.metadata["note"]
    assert ctx.steps[-1][0] == ctx.steps[-1][1]
    assert res.seeds == (3,)


def test_large_mask_is_inpainted_at_reduced_scale():
    img = gradient(600, 700)
    mask = np.zeros((600, 700), np.uint8)
    mask[50:550, 100:620] = 255  # 260k pixels: ~4 s at full resolution and radius 15
    res, _ = run(GenerationRequest(Task.INPAINT, image=img, mask=mask))
    out = res.images[0]
    assert 0 < res.metadata["scale"] < 1
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    # the fill continues the gradient (red grows with x)
    assert int(out[300, 600, 0]) > int(out[300, 120, 0]) + 100


def test_inpaint_with_empty_mask_returns_the_image():
    img = gradient(20, 20)
    res, _ = run(GenerationRequest(Task.INPAINT, image=img, mask=np.zeros((20, 20), np.uint8)))
    np.testing.assert_array_equal(res.images[0], img)


def test_inpaint_batch_reports_consecutive_seeds():
    img = gradient(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[10:14, 10:14] = 255
    res, _ = run(GenerationRequest(Task.INPAINT, image=img, mask=mask, seed=9, batch_size=3))
    assert res.seeds == (9, 10, 11) and len(res.images) == 3


def test_inpaint_mask_size_mismatch_is_a_clear_error():
    with pytest.raises(GenerationError, match="mask is 10×10 but the image is 20×20"):
        run(
            GenerationRequest(
                Task.INPAINT, image=gradient(20, 20), mask=np.zeros((10, 10), np.uint8)
            )
        )


def test_inpaint_unknown_method():
    img = gradient(8, 8)
    with pytest.raises(GenerationError, match="method"):
        run(GenerationRequest(Task.INPAINT, image=img, mask=img[..., 0], classic_method="x"))


def test_inpaint_radius_grows_with_mask_and_is_bounded():
    assert inpaint_radius(1) == 3
    assert inpaint_radius(100 * 100) > inpaint_radius(20 * 20)
    assert inpaint_radius(10_000 * 10_000) == 15


def test_cancelled_before_start_raises():
    ev = threading.Event()
    ev.set()
    img = gradient(16, 16)
    with pytest.raises(JobCancelled):
        run(GenerationRequest(Task.INPAINT, image=img, mask=img[..., 0]), Ctx(ev))


@pytest.mark.parametrize("prefill", ["edge", "infill", "blur", "solid"])
def test_outpaint_grows_the_canvas_and_keeps_the_original(prefill):
    img = gradient(40, 50, 4)
    settings = OutpaintSettings(left=10, right=0, top=4, bottom=6, prefill=prefill)
    res, ctx = run(GenerationRequest(Task.OUTPAINT, image=img, outpaint=settings))
    out = res.images[0]
    assert out.shape == (50, 60, 4)
    np.testing.assert_array_equal(out[4:44, 10:60], img)
    assert res.metadata["method"] == f"outpaint-{prefill}"
    assert ctx.frames and ctx.frames[-1].shape == (50, 60, 4)


def test_outpaint_needs_a_positive_margin():
    with pytest.raises(GenerationError, match="at least one edge"):
        run(GenerationRequest(Task.OUTPAINT, image=gradient(8, 8), outpaint=OutpaintSettings()))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels", [3, 4])
def test_upscale_sizes(scale, channels):
    img = gradient(24, 32, channels)
    res, _ = run(GenerationRequest(Task.UPSCALE, image=img, upscale=UpscaleSettings(scale=scale)))
    out = res.images[0]
    assert out.shape == (24 * scale, 32 * scale, channels)
    # a smooth gradient stays close to a nearest-neighbour enlargement
    nearest = img.repeat(scale, 0).repeat(scale, 1)
    assert np.abs(out.astype(int) - nearest).mean() < 12
    assert res.metadata["method"] == "lanczos"


def test_upscale_sharpen_increases_edge_contrast():
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 200
    plain, _ = run(GenerationRequest(Task.UPSCALE, image=img, upscale=UpscaleSettings(2)))
    sharp, _ = run(
        GenerationRequest(Task.UPSCALE, image=img, upscale=UpscaleSettings(2, sharpen=1.0))
    )
    assert np.ptp(np.diff(sharp.images[0][8, :, 0].astype(int))) > np.ptp(
        np.diff(plain.images[0][8, :, 0].astype(int))
    )


def test_upscale_rejects_other_factors():
    with pytest.raises(GenerationError, match="2× or 4×"):
        run(GenerationRequest(Task.UPSCALE, image=gradient(4, 4), upscale=UpscaleSettings(3)))


@pytest.mark.parametrize("task", [Task.TXT2IMG, Task.IMG2IMG, Task.SKETCH])
def test_generative_tasks_say_a_model_is_needed(task):
    with pytest.raises(GenerationError, match="needs a diffusion model; .*Install a model in"):
        run(GenerationRequest(task, image=gradient(8, 8), prompt="a cat",
                              controls=(ControlSettings(ControlKind.SCRIBBLE, gradient(8, 8)),)))


def test_missing_image_is_a_clear_error():
    with pytest.raises(GenerationError, match="needs an input image"):
        run(GenerationRequest(Task.UPSCALE))
