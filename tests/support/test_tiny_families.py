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
