"""Diffusion upscale keeps a layer's transparency: the x4 model and tiled refine see the
layer's own colour past its soft edge (never the black behind transparency), and the
result carries the resampled alpha, so a soft-edged layer over transparency shows no
dark halo once composited."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, Task, UpscaleSettings
from canvasai.backends.diffusion import upscale
from canvasai.backends.router import backend_for
from tests.support.fixtures import RecordingContext

pytest.importorskip("torch")

RED = (220, 40, 30)


def soft_disc(w: int = 48, h: int = 40, r: float = 11.0, feather: float = 6.0) -> np.ndarray:
    """A red disc with a feathered alpha edge over fully transparent black."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx - w / 2, yy - h / 2)
    a = np.clip((r + feather - d) / feather, 0, 1)
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3] = RED
    img[..., 3] = np.rint(a * 255).astype(np.uint8)
    img[img[..., 3] == 0] = 0  # what an eraser or a fresh layer leaves: transparent black
    return img


def composite_over(rgba: np.ndarray, bg: tuple[int, int, int]) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float32) / 255
    return rgba[..., :3].astype(np.float32) * a + np.asarray(bg, np.float32) * (1 - a)


def run(settings, **kw):
    req = GenerationRequest(Task.UPSCALE, prompt="", steps=2, seed=3, **kw)
    ctx = RecordingContext()
    return backend_for(req, settings).run(req, ctx)


def test_bleed_continues_the_colour_past_a_soft_edge_and_keeps_painted_pixels():
    img = soft_disc()
    out = upscale.bleed(img)
    painted = img[..., 3] > 0
    np.testing.assert_array_equal(out[painted], img[..., :3][painted])
    assert np.abs(out.astype(int) - RED).max() <= 1  # black nowhere
    opaque = img.copy()
    opaque[..., 3] = 255
    np.testing.assert_array_equal(upscale.bleed(opaque), opaque[..., :3])


def test_lanczos_upscale_of_a_soft_edged_layer_shows_no_halo(tiny_settings):
    img = soft_disc()
    res = run(tiny_settings, model="sd1-tiny", image=img,
              upscale=UpscaleSettings(scale=2, refine_strength=0.0))
    out = res.images[0]
    assert out.shape == (80, 96, 4)
    # alpha kept: soft in between, transparent far away, opaque in the middle
    assert out[0, 0, 3] == 0 and out[40, 48, 3] == 255
    assert ((out[..., 3] > 10) & (out[..., 3] < 245)).sum() > 100
    # over any background the edge is the layer's red fading out, never darker
    for bg in ((255, 255, 255), (0, 0, 0), (40, 200, 90)):
        comp = composite_over(out, bg)
        a = out[..., 3:4].astype(np.float32) / 255
        ideal = np.asarray(RED, np.float32) * a + np.asarray(bg, np.float32) * (1 - a)
        assert np.abs(comp - ideal).max() <= 2.0, bg


@pytest.mark.parametrize("method", ["x4", "refine"])
def test_the_model_sees_the_layer_colour_and_the_result_keeps_its_alpha(
    tiny_settings, monkeypatch, method
):
    img = soft_disc()
    fed = []
    if method == "x4":
        real = upscale.common.run_batch

        def spy(manager, loaded, pipe, ctx, reporter, seeds, kwargs, **kw):
            fed.append(np.asarray(kwargs["image"].convert("RGB")))
            return real(manager, loaded, pipe, ctx, reporter, seeds, kwargs, **kw)

        monkeypatch.setattr(upscale.common, "run_batch", spy)
        small = soft_disc(24, 16, 4.0, 3.0)  # the tiny x4 UNet works at the input size
        res = run(tiny_settings, model="sd-x4-upscaler-tiny", image=small,
                  upscale=UpscaleSettings(scale=4))
        expected_alpha = upscale._alpha_up(small, (small.shape[1] * 4, small.shape[0] * 4))
    else:
        real = upscale.img2img.refine_pipe

        def spy(manager, loaded, crop, strength):
            fed.append(np.asarray(crop))
            return real(manager, loaded, crop, strength)

        monkeypatch.setattr(upscale.img2img, "refine_pipe", spy)
        res = run(tiny_settings, model="sd1-tiny", image=img,
                  upscale=UpscaleSettings(scale=2, tile=64, overlap=16, refine_strength=0.5))
        expected_alpha = upscale._alpha_up(img, (96, 80))
    assert fed
    assert (img[..., 3] == 0).any() if method == "refine" else (small[..., 3] == 0).any()
    for colour in fed:  # the layer's red everywhere, also behind the transparency
        assert np.abs(colour[..., :3].astype(int) - RED).max() <= 3
    out = res.images[0]
    np.testing.assert_array_equal(out[..., 3], expected_alpha)
    assert (out[..., 3] == 0).any() and (out[..., 3] == 255).any()
