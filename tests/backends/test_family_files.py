"""The forms people keep the new families in, loaded through the registry and run.

ComfyUI's split files (transformer in ``diffusion_models/``, text encoders in
``text_encoders/``, VAE in ``vae/``) and GGUF-quantized transformers, written from the
tiny diffusers folders in the original key layouts (tests/support/tiny_families.py).
The split model must give exactly the picture its diffusers folder gives.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, Task
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.models import ModelRegistry
from canvasai.core.errors import ModelError
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tests.support.tiny_families")
layouts = pytest.importorskip("tests.support.family_layouts")

SPLIT_KINDS = ["flux", "flux2-klein", "sd3", "zimage", "qwen", "chroma"]


def _patched(kind: str):
    """diffusers' Flux.1/Chroma converters assume full width (3072); tiny files need this."""
    return layouts.flux_width_agnostic() if kind in ("flux", "chroma") else contextlib.nullcontext()


def _txt2img(backend: DiffusersBackend, model: str, kind: str) -> np.ndarray:
    req = GenerationRequest(task=Task.TXT2IMG, model=model, width=32, height=32, steps=2,
                            seed=3, prompt="a red fox", native_resolution=False)
    with _patched(kind):
        return backend.run(req, RecordingContext()).images[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("family-folders")


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_split_files_run_like_the_diffusers_folder(folders, tmp_path, kind) -> None:
    folder = tf.cached(kind, folders)
    root = tmp_path / "ComfyUI" / "models"
    files = tf.save_split_files(folder, root, kind)
    # the configuration and tokenizers come from a config-only sidecar, as for SD single files
    shutil.copytree(folder, files["transformer"].with_suffix(".config"),
                    ignore=shutil.ignore_patterns("*.safetensors"))
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    (info,) = [m for m in backend.registry.models() if m.parts]
    assert info.usable and info.path == files["transformer"]
    split = _txt2img(backend, info.name, kind)
    whole = _txt2img(DiffusersBackend(ModelRegistry([folders], include_hf_cache=False)),
                     str(folder), kind)
    # Same weights, but not at the same memory alignment (the split files' tensors sit at
    # the file's offsets), and CPU kernels round differently at unaligned edges: on some
    # CPUs (this AMD EPYC without AVX-512) one value in thousands ends one level apart.
    diff = np.abs(split.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (diff.max(), (diff > 0).sum())


def test_split_files_take_their_configuration_from_an_installed_diffusers_folder(folders, tmp_path):
    folder = tf.cached("zimage", folders)
    root = tmp_path / "models"
    tf.save_split_files(folder, root / "comfy", "z_image_turbo")
    shutil.copytree(folder, root / "Z-Image-Turbo")  # the diffusers version, as from the hub
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    (info,) = [m for m in backend.registry.models() if m.parts]
    assert info.variant == "turbo"
    assert _txt2img(backend, info.name, "zimage").shape == (32, 32, 4)


def test_split_files_without_any_configuration_say_how_to_get_one(folders, tmp_path):
    folder = tf.cached("zimage", folders)
    root = tmp_path / "models"
    tf.save_split_files(folder, root, "zimage")
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    (info,) = [m for m in backend.registry.models() if m.parts]
    with pytest.raises(ModelError, match="configuration and tokenizers"):
        _txt2img(backend, info.name, "zimage")


@pytest.mark.parametrize("kind", ["flux", "zimage"])
def test_gguf_transformer_runs_with_its_split_parts(folders, tmp_path, kind) -> None:
    pytest.importorskip("gguf")
    folder = tf.cached(kind, folders)
    root = tmp_path / "models"
    files = tf.save_split_files(folder, root, kind)
    files["transformer"].unlink()
    gguf_file = tf.save_gguf_transformer(folder, root / "unet" / f"{kind}-Q8_0.gguf")
    shutil.copytree(folder, gguf_file.with_suffix(".config"),
                    ignore=shutil.ignore_patterns("*.safetensors"))
    backend = DiffusersBackend(ModelRegistry([root], include_hf_cache=False))
    (info,) = [m for m in backend.registry.models() if m.format == "gguf"]
    assert info.usable and len(info.parts) >= 2
    out = _txt2img(backend, info.name, kind)
    assert out.shape == (32, 32, 4)
