"""Every modern family through the registry -> router -> DiffusersBackend path, tiny models.

One tiny random model per family kind (tests/support/tiny_families.py), saved as a
diffusers folder in a session folder that a registry scans, exactly as a person's
models folder is scanned. Each flow runs at 32-64 px with 2 steps.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, OutpaintSettings, Task
from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.masking import composite
from canvasai.backends.models import BASE, EDIT, INPAINT, ModelRegistry
from canvasai.backends.router import backend_for
from canvasai.core.errors import JobCancelled, ModelError
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tests.support.tiny_families")

#: tiny kind -> (family, kind, variant) the registry must report for its folder
EXPECTED = {
    "flux": ("flux", BASE, "schnell"),
    "flux-dev": ("flux", BASE, "dev"),
    "flux-fill": ("flux", INPAINT, "fill"),
    "flux-kontext": ("flux", EDIT, "kontext"),
    "flux2-klein": ("flux2", BASE, "klein"),
    "sd3": ("sd3", BASE, ""),
    "zimage": ("zimage", BASE, ""),
    "qwen": ("qwen", BASE, ""),
    "qwen-edit": ("qwen", EDIT, "edit"),
    "qwen-edit-plus": ("qwen", EDIT, "edit-plus"),
    "chroma": ("chroma", BASE, ""),
}
#: the kinds the flow tests run (one per family, plus the Fill and edit models)
FLOW_KINDS = ["flux", "flux-fill", "flux-kontext", "flux2-klein", "sd3", "zimage", "qwen", "chroma"]
EDIT_KINDS = ["flux-kontext", "flux2-klein", "qwen-edit", "qwen-edit-plus"]

W, H = 64, 48


@pytest.fixture(scope="session")
def family_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="session")
def family_backend(family_root: Path) -> DiffusersBackend:
    return DiffusersBackend(ModelRegistry([family_root], include_hf_cache=False))


def _model(family_root: Path, backend: DiffusersBackend, kind: str) -> str:
    folder = tf.cached(kind, family_root)
    backend.registry.rescan()
    return str(folder)


@contextlib.contextmanager
def _small(kind: str):
    """Qwen's edit pipelines work at ~1 MP whatever the request; keep tests near 64 px."""
    if kind.startswith("qwen-edit"):
        with tf.qwen_edit_area(64 * 64):
            yield
    else:
        yield


def _image() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def _mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[16:32, 24:44] = 255
    return m


def _run(backend: DiffusersBackend, kind: str, model: str, ctx=None, **kw):
    kw.setdefault("steps", 2)
    kw.setdefault("seed", 5)
    kw.setdefault("prompt", "a red fox")
    kw.setdefault("native_resolution", False)
    req = GenerationRequest(model=model, **kw)
    ctx = ctx or RecordingContext()
    with _small(kind):
        return backend.run(req, ctx), ctx


def _outside_unchanged(before: np.ndarray, after: np.ndarray, mask: np.ndarray, req_blend) -> None:
    """Pixels the feathered paste-back gives zero weight are bit-identical."""
    probe = composite(before, 255 - before, mask, req_blend)  # differs from `before` everywhere
    untouched = (probe == before).all(axis=2)
    assert untouched.sum() > 0.2 * untouched.size
    np.testing.assert_array_equal(after[untouched], before[untouched])


def test_each_family_is_recognised_from_its_folder(family_root: Path) -> None:
    for kind in EXPECTED:
        tf.cached(kind, family_root)
    reg = ModelRegistry([family_root], include_hf_cache=False)
    found = {m.path.name: (m.family, m.kind, m.variant) for m in reg.models()}
    for kind, expected in EXPECTED.items():
        assert found[kind] == expected, kind
    assert {f for f, _, _ in EXPECTED.values()} <= set(families.names())


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_generate_refine_inpaint_outpaint(family_root, family_backend, kind) -> None:
    model = _model(family_root, family_backend, kind)
    img, mask = _image(), _mask()
    # Generate: the size asked for (a multiple of 16 is not needed: results are scaled)
    res, ctx = _run(family_backend, kind, model, task=Task.TXT2IMG, width=W, height=H)
    assert res.images[0].shape == (H, W, 4)
    assert len(ctx.previews) == 2 and [s for s, _ in ctx.progress_calls] == [1, 2]
    assert res.metadata["family"] == EXPECTED[kind][0]
    # Refine
    res, ctx = _run(family_backend, kind, model, task=Task.IMG2IMG, image=img, strength=0.6)
    assert res.images[0].shape == img.shape and len(ctx.previews) == 2
    # Inpaint: outside the feathered mask bit-identical
    res, ctx = _run(family_backend, kind, model, task=Task.INPAINT, image=img, mask=mask)
    req = GenerationRequest(task=Task.INPAINT, image=img, mask=mask)
    _outside_unchanged(img, res.images[0], mask, req.blend)
    assert len(ctx.previews) == 2 and ctx.previews[0][1].shape == img.shape
    # Outpaint: the original, away from the seam, bit-identical
    res, _ = _run(
        family_backend, kind, model, task=Task.OUTPAINT, image=img,
        outpaint=OutpaintSettings(left=16),
    )
    out = res.images[0]
    assert out.shape == (H, W + 16, 4)
    np.testing.assert_array_equal(out[:, 16 + 24 :], img[:, 24:])


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_selection_and_whole_image(family_root, family_backend, kind) -> None:
    model = _model(family_root, family_backend, kind)
    img, mask = _image(), _mask()
    res, ctx = _run(
        family_backend, kind, model, task=Task.EDIT, image=img, mask=mask, prompt="make it night"
    )
    req = GenerationRequest(task=Task.EDIT, image=img, mask=mask, prompt="x")
    _outside_unchanged(img, res.images[0], mask, req.blend)
    assert res.metadata["selection"] is True and len(ctx.previews) == 2
    assert res.metadata["task"] == "edit" and res.metadata["instruction"] == "make it night"
    res, _ = _run(
        family_backend, kind, model, task=Task.EDIT, image=img, prompt="make it night",
        references=(img[:, ::-1].copy(),),
    )
    assert res.images[0].shape == img.shape and not (res.images[0] == img).all()


def test_edit_needs_an_edit_model(family_root, family_backend) -> None:
    model = _model(family_root, family_backend, "sd3")
    with pytest.raises(ModelError, match="Edit needs an edit model"):
        _run(family_backend, "sd3", model, task=Task.EDIT, image=_image(), prompt="night")


@pytest.mark.parametrize("kind", ["flux", "qwen", "flux2-klein"])
def test_same_seed_same_image_and_cancel_within_a_step(family_root, family_backend, kind) -> None:
    model = _model(family_root, family_backend, kind)
    a, _ = _run(family_backend, kind, model, task=Task.TXT2IMG, width=32, height=32, steps=3)
    b, _ = _run(family_backend, kind, model, task=Task.TXT2IMG, width=32, height=32, steps=3)
    np.testing.assert_array_equal(a.images[0], b.images[0])
    ctx = RecordingContext(cancel_after=1)
    with pytest.raises(JobCancelled):
        _run(family_backend, kind, model, ctx=ctx, task=Task.TXT2IMG, width=32, height=32, steps=3)
    assert [s for s, _ in ctx.progress_calls] == [1]


def test_router_picks_the_diffusers_backend_for_a_family_model(family_root, family_backend) -> None:
    model = _model(family_root, family_backend, "zimage")
    req = GenerationRequest(task=Task.TXT2IMG, model=model, width=32, height=32, steps=2, seed=1)
    backend = backend_for(req, registry=family_backend.registry)
    assert backend.name == "diffusers"


def test_family_defaults_and_negative_prompt() -> None:
    flux = families.get("flux")
    assert flux.defaults("schnell").steps == 4 and not flux.takes_negative_prompt("schnell")
    assert flux.defaults("dev").guidance == 3.5
    kw = flux.call_kwargs("p", "blurry", 4, 3.5, "dev")
    assert "negative_prompt" not in kw and kw["guidance_scale"] == 3.5
    qwen = families.get("qwen")
    kw = qwen.call_kwargs("p", "", 30, 4.0)
    assert kw["true_cfg_scale"] == 4.0 and kw["negative_prompt"] == " "
    sd3 = families.get("sd3")
    assert sd3.takes_negative_prompt() and sd3.call_kwargs("p", "n", 2, 5)["negative_prompt"] == "n"
    assert not families.get("zimage").takes_negative_prompt("turbo")
    for fam in families.ALL:
        assert fam.multiple in (8, 16) and fam.defaults().steps > 0


def test_tiny_autoencoder_previews_for_the_16_channel_families(family_root, tmp_path) -> None:
    """An installed TAEF1 decodes Flux previews, and Z-Image's (Flux's VAE) too."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=16,
    ).save_pretrained(tmp_path / "taef1")
    backend = DiffusersBackend(ModelRegistry([tmp_path], include_hf_cache=False))
    (tae,) = [m for m in backend.registry.models() if m.kind == "taesd"]
    assert tae.family == "flux"
    for kind in ("flux", "zimage"):
        model = str(tf.cached(kind, family_root))
        res, ctx = _run(backend, kind, model, task=Task.TXT2IMG, width=W, height=H)
        assert res.metadata["preview"] == "taesd", kind
        assert len(ctx.previews) == 2 and ctx.previews[0][1].shape == (H, W, 4)


@pytest.mark.parametrize(
    ("kind", "cn_class"),
    [("flux", "FluxControlNetModel"), ("sd3", "SD3ControlNetModel"),
     ("zimage", "ZImageControlNetModel"), ("qwen", "QwenImageControlNetModel")],
)
def test_sketch_to_render_with_a_family_controlnet(family_root, tmp_path, kind, cn_class) -> None:
    import diffusers

    from canvasai.backends.api import ControlKind, ControlSettings

    folder = tf.cached(kind, family_root)
    transformer = getattr(diffusers, families.get(EXPECTED[kind][0]).transformer_class)
    torch.manual_seed(0)
    t = transformer.from_pretrained(folder / "transformer")
    extra = {"num_layers": 1} if kind in ("flux", "sd3", "qwen") else {}
    if kind == "flux":
        extra["num_single_layers"] = 0
    if kind == "zimage":
        extra = {"control_layers_places": [0], "control_refiner_layers_places": [0],
                 "control_in_dim": 33, "add_control_noise_refiner": "control_layers"}
    # a ControlNet with the transformer's dimensions (from_transformer's defaults are full size)
    net = getattr(diffusers, cn_class).from_config({**dict(t.config), **extra})
    net.save_pretrained(tmp_path / f"{kind}-scribble-controlnet")
    backend = DiffusersBackend(ModelRegistry([tmp_path], include_hf_cache=False))
    (cn,) = [m for m in backend.registry.models() if m.kind == "controlnet"]
    assert (cn.family, cn.control_type) == (EXPECTED[kind][0], "scribble")
    sketch = np.full((H, W, 3), 255, np.uint8)
    sketch[10:40, 30] = 0
    control = ControlSettings(kind=ControlKind.SCRIBBLE, image=sketch)
    res, ctx = _run(backend, kind, str(folder), task=Task.SKETCH, controls=(control,), width=W, height=H)
    assert res.images[0].shape == (H, W, 4) and len(ctx.previews) == 2
    assert res.metadata["controlnet"] == cn.name
    img, mask = _image(), _mask()
    res, _ = _run(backend, kind, str(folder), task=Task.SKETCH, controls=(control,), image=img,
                  mask=mask, width=W, height=H)
    _outside_unchanged(img, res.images[0], mask, GenerationRequest(task=Task.INPAINT, image=img,
                                                                  mask=mask).blend)


@pytest.mark.parametrize("kind", ["flux", "flux2-klein"])
def test_upscale_refine_tiles_with_the_family(family_root, family_backend, kind) -> None:
    from canvasai.backends.api import UpscaleSettings

    model = _model(family_root, family_backend, kind)
    img = _image()[:32, :48]
    res, ctx = _run(
        family_backend, kind, model, task=Task.UPSCALE, image=img,
        upscale=UpscaleSettings(scale=2, tile=64, overlap=16, refine_strength=0.4),
    )
    assert res.images[0].shape == (64, 96, 4)
    assert res.metadata["method"] == "lanczos+tiled-refine" and res.metadata["tiles"] > 1
    assert res.metadata["tile"] % 16 == 0 and len(ctx.previews) == len(ctx.progress_calls)
