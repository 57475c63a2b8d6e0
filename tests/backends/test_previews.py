"""Latent previews: the linear projection and TAESD decode."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.models import SD1, SDXL
from canvasai.backends.previews import LATENT_RGB, Previewer, latent_to_rgb


def test_projection_values_numpy_and_torch_agree() -> None:
    torch = pytest.importorskip("torch")
    lat = np.zeros((1, 4, 2, 3), np.float32)
    assert (latent_to_rgb(lat, SD1) == 128).all()  # (0 + 1) * 127.5 rounds to 128
    lat[0, 0] = 1.0
    expected = np.rint((LATENT_RGB[SD1][0][0] + 1.0) * 127.5).astype(np.uint8)
    out = latent_to_rgb(lat, SD1)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert (out[0, 0] == expected).all()
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(2, 4, 5, 7)).astype(np.float32)
    for fam in (SD1, SDXL):
        np.testing.assert_array_equal(
            latent_to_rgb(lat, fam, index=1), latent_to_rgb(torch.from_numpy(lat), fam, index=1)
        )


def test_sdxl_bias_applied() -> None:
    lat = np.zeros((1, 4, 1, 1), np.float32)
    bias = LATENT_RGB[SDXL][1]
    assert latent_to_rgb(lat, SDXL)[0, 0].tolist() == np.rint((bias + 1) * 127.5).tolist()


def test_projection_works_on_a_full_size_latent() -> None:
    """(What previews cost per step is `preview_cost_ratio` in benchmarks/generation.py.)"""
    torch = pytest.importorskip("torch")
    lat = torch.randn(1, 4, 128, 128)  # a 1024 px image
    rgb = latent_to_rgb(lat, SDXL)
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8


def test_taesd_preview_is_full_size(tiny_models) -> None:
    torch = pytest.importorskip("torch")
    from diffusers import AutoencoderTiny

    taesd = AutoencoderTiny.from_pretrained(tiny_models.taesd, local_files_only=True)
    prev = Previewer(SD1, taesd, scaling_factor=0.18215)
    assert prev.method == "taesd"
    img = prev(torch.randn(2, 4, 8, 12), index=1)
    assert img.shape == (64, 96, 3) and img.dtype == np.uint8
    assert Previewer(SD1).method == "latent-linear"
    assert Previewer(SD1)(torch.randn(1, 4, 8, 12)).shape == (8, 12, 3)
