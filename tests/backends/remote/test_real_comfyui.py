"""Opt-in: the remote engine against a real ComfyUI server.

Set ``CANVASAI_COMFYUI_URL=http://host:8188`` (and ``CANVASAI_COMFYUI_TOKEN`` if it needs
one; ``CANVASAI_COMFYUI_MODEL=comfyui:checkpoints/<file>`` to choose the model, else the
first checkpoint it lists). Skipped otherwise: CI has no ComfyUI and no GPU.
Runs txt2img, inpaint and outpaint at small sizes and few steps, checks shapes, previews
and that pixels outside the feathered mask are the original bytes; with two LoRAs and
with two control layers where the server has files for them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from canvasai.backends import masking
from canvasai.backends.api import (
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    Task,
)
from canvasai.backends.loras import LoraSpec
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


def _state(backend):
    (state,) = backend.pool.states
    return state


def test_two_loras(real):
    backend, model = real
    loras = list(_state(backend).listing.get("loras") or [])
    family = catalog.classify(*catalog.split_id(model)).family
    fitting = [f for f in loras if catalog.file_family(f, family) == family][:2]
    if not fitting:
        pytest.skip("the server lists no LoRA for the model's family")
    req = GenerationRequest(Task.TXT2IMG, prompt="a lighthouse at dusk", model=model, seed=1,
                            steps=6, width=512, height=512,
                            loras=tuple(LoraSpec(f, 0.6) for f in fitting))
    result = backend.run(req, Ctx())
    assert [x["name"] for x in result.metadata["loras"]] == fitting


def test_two_control_layers(real):
    backend, model = real
    files = list(_state(backend).listing.get("controlnet") or [])
    family = catalog.classify(*catalog.split_id(model)).family
    kinds = [k for k in (ControlKind.SCRIBBLE, ControlKind.CANNY, ControlKind.LINEART,
                         ControlKind.DEPTH) if catalog.pick_controlnet(files, k.value, family)]
    if len(kinds) < 2:
        pytest.skip("the server lists fewer than two ControlNets for the model's family")
    img = picture()
    req = GenerationRequest(Task.SKETCH, prompt="a house", model=model, seed=1, steps=6,
                            controls=(ControlSettings(kinds[0], img, scale=0.8, end=0.7),
                                      ControlSettings(kinds[1], img, scale=0.5, start=0.2)))
    result = backend.run(req, Ctx())
    assert result.images[0].shape == (256, 256, 4)
    assert [c["kind"] for c in result.metadata["controls"]] == [k.value for k in kinds[:2]]
