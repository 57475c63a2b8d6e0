"""Opt-in: the remote engine against a real ComfyUI server.

Set ``CANVASAI_COMFYUI_URL=http://host:8188`` (and ``CANVASAI_COMFYUI_TOKEN`` if it needs
one; ``CANVASAI_COMFYUI_MODEL=comfyui:checkpoints/<file>`` to choose the model, else the
first checkpoint it lists). Skipped otherwise: CI has no ComfyUI and no GPU.
Runs txt2img, inpaint and outpaint at small sizes and few steps, checks shapes, previews
and that pixels outside the feathered mask are the original bytes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from canvasai.backends import masking
from canvasai.backends.api import GenerationRequest, OutpaintSettings, Task
from canvasai.backends.remote import catalog
from canvasai.backends.remote.backend import RemoteBackend
from canvasai.backends.remote.pool import ServerPool
from canvasai.backends.remote.protocol import ServerConfig
from tests.backends.remote.conftest import Ctx

URL = os.environ.get("CANVASAI_COMFYUI_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set CANVASAI_COMFYUI_URL to test a real ComfyUI")


@pytest.fixture(scope="module")
def real():
    pool = ServerPool([ServerConfig(URL, os.environ.get("CANVASAI_COMFYUI_TOKEN", ""))],
                      timeout=600.0)
    (state,) = pool.refresh()
    assert state.alive, state.error
    model = os.environ.get("CANVASAI_COMFYUI_MODEL", "")
    if not model:
        ckpts = state.listing.get("checkpoints") or []
        if not ckpts:
            pytest.skip("the server lists no checkpoint")
        model = catalog.model_id("checkpoints", ckpts[0])
    yield RemoteBackend(pool), model
    pool.close()


def picture() -> np.ndarray:
    y, x = np.mgrid[0:256, 0:256]
    img = np.zeros((256, 256, 4), np.uint8)
    img[..., 0], img[..., 1], img[..., 2], img[..., 3] = x, y, 128, 255
    return img


def test_txt2img(real):
    backend, model = real
    ctx = Ctx()
    req = GenerationRequest(Task.TXT2IMG, prompt="a lighthouse at dusk", model=model, seed=1,
                            steps=6, width=512, height=512)
    result = backend.run(req, ctx)
    assert result.images[0].shape == (512, 512, 4)
    assert len(ctx.progress_calls) >= 6


def test_inpaint_keeps_outside_pixels(real):
    backend, model = real
    img = picture()
    mask = np.zeros((256, 256), np.uint8)
    mask[96:160, 96:160] = 255
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="a red apple", model=model,
                            seed=2, steps=6)
    out = backend.run(req, Ctx()).images[0]
    outside = masking.paste_alpha(mask, req.blend) == 0.0
    assert np.array_equal(out[outside], img[outside])


def test_outpaint(real):
    backend, model = real
    img = picture()
    req = GenerationRequest(Task.OUTPAINT, image=img, prompt="a meadow", model=model, seed=3,
                            steps=6, outpaint=OutpaintSettings(right=128))
    out = backend.run(req, Ctx()).images[0]
    assert out.shape == (256, 384, 4)
    reach = req.blend.grow_px + req.blend.feather_px + 1
    assert np.array_equal(out[:, : 256 - reach], img[:, : 256 - reach])
