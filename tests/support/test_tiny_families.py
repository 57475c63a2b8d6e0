"""Checks of the tiny newer-family models in tests.support.tiny_families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import tiny_families as tf

CASES = [(kind, task) for kind in tf.KINDS for task in tf.TASKS[kind]]
LATENT_CHANNELS = {"flux2-klein": 32}  # all others 16


@pytest.fixture(scope="session")
def family_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import diffusers
    import torch

    torch.set_num_threads(
        1
    )  # as tests.support.fixtures: 2 threads on a shared 2-core box is 30x slower
    diffusers.utils.logging.disable_progress_bar()
    return tmp_path_factory.getbasetemp() / "tiny-families"


def _latent_channels(pipe) -> int:
    cfg = pipe.vae.config
    return cfg.get("latent_channels") or cfg["z_dim"]


@pytest.mark.parametrize(("kind", "task"), CASES, ids=[f"{k}-{t}" for k, t in CASES])
def test_loads_and_runs(family_root: Path, kind: str, task: str) -> None:
    import diffusers

    folder = tf.cached(kind, family_root)
    assert json.loads((folder / tf.MARKER).read_text())["kind"] == kind
    pipe = tf.load(folder, task)
    assert type(pipe).__name__ == tf.TASKS[kind][task]
    assert isinstance(pipe, diffusers.DiffusionPipeline)
    assert pipe.vae_scale_factor == 8
    assert _latent_channels(pipe) == LATENT_CHANNELS.get(kind, 16)
    for height, width in ((64, 64), (32, 64)):
        with tf.qwen_edit_area(height * width):
            images = pipe(**tf.call_kwargs(kind, task, height, width)).images
        assert images.shape == (1, height, width, 3)
        assert np.isfinite(images).all()


def test_plain_from_pretrained_gives_the_family_class(family_root: Path) -> None:
    import diffusers

    for kind, cls in (("flux-fill", "FluxFillPipeline"), ("chroma", "ChromaPipeline")):
        pipe = diffusers.DiffusionPipeline.from_pretrained(
            tf.cached(kind, family_root), local_files_only=True
        )
        assert type(pipe).__name__ == cls


def test_builds_are_deterministic() -> None:
    a = tf.make_pipeline("flux").transformer.state_dict()
    b = tf.make_pipeline("flux").transformer.state_dict()
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_cached_reuses_the_folder(family_root: Path) -> None:
    folder = tf.cached("flux", family_root)
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert tf.cached("flux", family_root) == folder
    assert (folder / "model_index.json").stat().st_mtime_ns == stamp


def _same_weights(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# Flux.1 variants share one transformer class and converter: one of them is enough here.
SINGLE_FILE_KINDS = ("flux-dev", "flux-fill", "flux2-klein", "sd3", "zimage", "qwen", "chroma")
ORIGINAL_KEY = {
    "flux-dev": "double_blocks.0.img_attn.qkv.weight",
    "flux-fill": "single_blocks.0.linear1.weight",
    "flux2-klein": "single_stream_modulation.lin.weight",
    "sd3": "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
    "zimage": "layers.0.attention.qkv.weight",
    "qwen": "transformer_blocks.0.attn.to_q.weight",
    "chroma": "distilled_guidance_layer.layers.0.in_layer.weight",
}


@pytest.mark.parametrize("kind", SINGLE_FILE_KINDS)
def test_single_file_transformer_round_trip(family_root: Path, tmp_path: Path, kind: str) -> None:
    import diffusers
    from safetensors import safe_open

    folder = tf.cached(kind, family_root)
    path = tf.save_single_file_transformer(folder, tmp_path / f"{kind}.safetensors")
    with safe_open(str(path), "pt") as f:
        assert ORIGINAL_KEY[kind] in set(f.keys())
    loaded = tf.load_single_file_transformer(path, folder)
    ref = getattr(diffusers, tf.transformer_class(folder)).from_pretrained(
        folder, subfolder="transformer"
    )
    assert _same_weights(loaded, ref)
    # and the pipeline gives the same image with it
    task = next(iter(tf.TASKS[kind]))
    pipe = tf.load(folder, task)
    first = pipe(**tf.call_kwargs(kind, task, 32, 32)).images
    pipe.transformer = loaded
    again = pipe(**tf.call_kwargs(kind, task, 32, 32)).images
    np.testing.assert_allclose(
        first, again, atol=1e-5
    )  # same weights; fp summation order may differ


def test_flux_single_file_needs_the_width_patch(family_root: Path, tmp_path: Path) -> None:
    """diffusers 0.42.1 hard-codes Flux.1's full width (3072) in its converter."""
    import diffusers

    folder = tf.cached("flux", family_root)
    path = tf.save_single_file_transformer(folder, tmp_path / "flux.safetensors")
    with pytest.raises(RuntimeError, match="split_with_sizes"):
        diffusers.FluxTransformer2DModel.from_single_file(
            str(path), config=str(folder), subfolder="transformer", local_files_only=True
        )


@pytest.mark.parametrize("kind", ("flux", "sd3", "zimage", "qwen", "flux2-klein"))
def test_split_files(family_root: Path, tmp_path: Path, kind: str) -> None:
    import shutil

    import diffusers
    import transformers

    folder = tf.cached(kind, family_root)
    files = tf.save_split_files(folder, tmp_path, "tiny")
    assert files["transformer"] == tmp_path / "diffusion_models" / "tiny.safetensors"
    assert files["vae"] == tmp_path / "vae" / "tiny_vae.safetensors"
    assert _same_weights(
        tf.load_single_file_transformer(files["transformer"], folder),
        getattr(diffusers, tf.transformer_class(folder)).from_pretrained(
            folder, subfolder="transformer"
        ),
    )
    index = json.loads((folder / "model_index.json").read_text())
    vae_cls = getattr(diffusers, index["vae"][1])
    if index["vae"][1] == "AutoencoderKL":
        vae = vae_cls.from_single_file(
            str(files["vae"]), config=str(folder), subfolder="vae", local_files_only=True
        )
        assert _same_weights(vae, vae_cls.from_pretrained(folder, subfolder="vae"))
    else:  # diffusers cannot single-file AutoencoderKLFlux2 / AutoencoderKLQwenImage
        with pytest.raises(ValueError, match="only compatible with"):
            vae_cls.from_single_file(str(files["vae"]), config=str(folder), subfolder="vae")
    for attr in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        if attr not in files:
            continue
        assert files[attr].parent == tmp_path / "text_encoders"
        hf = tmp_path / f"hf-{attr}"
        hf.mkdir()
        shutil.copy(folder / attr / "config.json", hf / "config.json")
        shutil.copy(files[attr], hf / "model.safetensors")
        cls = getattr(transformers, index[attr][1])
        assert _same_weights(
            cls.from_pretrained(hf, local_files_only=True),
            cls.from_pretrained(folder / attr, local_files_only=True),
        )


@pytest.mark.parametrize(
    ("kind", "qtype"),
    [("flux", "Q8_0"), ("flux-dev", "F16"), ("chroma", "Q8_0"), ("flux2-klein", "Q8_0")]
    + [("sd3", "Q8_0"), ("zimage", "Q8_0"), ("qwen", "Q8_0")],
)
def test_gguf_transformer(family_root: Path, tmp_path: Path, kind: str, qtype: str) -> None:
    pytest.importorskip("gguf")
    from gguf import GGUFReader

    folder = tf.cached(kind, family_root)
    path = tf.save_gguf_transformer(folder, tmp_path / f"{kind}-{qtype}.gguf", qtype)
    names = {t.name: t.tensor_type.name for t in GGUFReader(str(path)).tensors}
    key = ORIGINAL_KEY.get(kind, "double_blocks.0.img_attn.qkv.weight").removeprefix(
        "model.diffusion_model."
    )
    assert names[key] == qtype
    model = tf.load_gguf_transformer(path, folder)
    quantized = [p for p in model.parameters() if type(p).__name__ == "GGUFParameter"]
    assert bool(quantized) == (qtype not in ("F16", "F32"))
    task = next(iter(tf.TASKS[kind]))
    pipe = tf.load(folder, task)
    ref = pipe(**tf.call_kwargs(kind, task, 32, 32)).images
    pipe.transformer = model
    out = pipe(**tf.call_kwargs(kind, task, 32, 32)).images
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.05  # 8-bit weights: close to, not equal to, the original
