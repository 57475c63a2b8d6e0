"""The router resolves against THE registry: a model dropped into the models folder after
a first job runs without a restart, through the service's path and through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends import models, router
from canvasai.backends.api import GenerationRequest, Task
from canvasai.backends.models import ModelRegistry
from canvasai.core import settings
from canvasai.core.errors import ModelError
from tests.support.fixtures import RecordingContext

pytest.importorskip("diffusers")


def _txt2img(model: str) -> GenerationRequest:
    return GenerationRequest(
        Task.TXT2IMG, model=model, prompt="a fox", steps=1, seed=5, width=64, height=64
    )


def test_model_dropped_in_after_a_job_runs_after_one_rescan(models_dir: Path, tiny_models):
    """The app's path (service -> runner -> router), without pressing refresh."""
    from canvasai.generation.runner import run_sync

    shutil.copytree(tiny_models.sd1, models_dir / "first")
    assert run_sync(_txt2img("first")).images[0].shape[:2] == (64, 64)
    reg = models.registry()
    scans = reg.scans
    backend = router.diffusers_backend()
    assert backend.registry is reg and backend.manager.registry is reg

    shutil.copytree(tiny_models.sd1, models_dir / "dropped")
    result = run_sync(_txt2img("dropped"))
    assert result.images[0].shape[:2] == (64, 64)
    assert reg.scans == scans + 1  # exactly one rescan, on the unknown name
    assert models.registry() is reg  # ... of the one registry everybody reads
    assert "dropped" in [m.name for m in reg.models()]  # so the panel lists it too
    assert router.diffusers_backend() is backend


def test_panel_refresh_is_seen_by_the_router(models_dir: Path, tiny_models) -> None:
    """The panel's refresh (`models.rescan()`) and the router share one scan."""
    shutil.copytree(tiny_models.sd1, models_dir / "first")
    req = _txt2img("first")
    router.backend_for(req).run(req, RecordingContext())
    shutil.copytree(tiny_models.sd1, models_dir / "after-refresh")
    listed = [m.name for m in models.rescan()]  # what the panel's refresh button does
    assert listed == ["after-refresh", "first"]
    scans = models.registry().scans
    req = _txt2img("after-refresh")
    res = router.backend_for(req).run(req, RecordingContext())
    assert res.images[0].shape[:2] == (64, 64)
    assert models.registry().scans == scans  # nothing left to rescan


def test_model_dropped_in_runs_through_the_cli(
    models_dir: Path, tiny_models, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from canvasai.cli.entry import main

    rng = np.random.default_rng(0)
    image = tmp_path / "in.png"
    mask = tmp_path / "mask.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    m = np.zeros((64, 64), np.uint8)
    m[16:48, 16:48] = 255
    Image.fromarray(m).save(mask)

    def inpaint(model: str, out: str) -> int:
        argv = ["inpaint", str(image), "--mask", str(mask), "-o", str(tmp_path / out)]
        return main([*argv, "--model", model, "--steps", "1", "--seed", "2", "--prompt", "x"])

    shutil.copytree(tiny_models.sd1_inpaint, models_dir / "first-inpaint")
    assert inpaint("first-inpaint", "a.png") == 0, capsys.readouterr().err
    shutil.copytree(tiny_models.sd1_inpaint, models_dir / "dropped-inpaint")
    assert inpaint("dropped-inpaint", "b.png") == 0, capsys.readouterr().err
    assert (tmp_path / "b.png").is_file()
    assert inpaint("never-installed", "c.png") == 1
    err = capsys.readouterr().err
    assert "Unknown model 'never-installed'" in err and "dropped-inpaint" in err
    assert "Traceback" not in err


def test_a_broken_entry_does_not_break_jobs_on_the_others(models_dir: Path, tiny_models) -> None:
    shutil.copytree(tiny_models.sd1, models_dir / "good")
    bad = models_dir / "bad.safetensors"
    raw = b'{"w": {"dtype": "F16", "shape": 7, "data_offsets": null}}'
    bad.write_bytes(len(raw).to_bytes(8, "little") + raw)
    req = _txt2img("good")
    assert router.backend_for(req).run(req, RecordingContext()).images
    with pytest.raises(ModelError, match="bad was not loaded: .*shape 7"):
        router.backend_for(_txt2img("bad"))


def test_settings_forms(models_dir: Path, tmp_path: Path) -> None:
    shared = models.registry()
    assert router.registry_for() is shared
    assert router.registry_for(settings.current().models) is shared
    assert router.diffusers_backend(settings.current().models) is router.diffusers_backend()
    pinned = ModelRegistry([tmp_path], include_hf_cache=False)
    assert router.registry_for(registry=pinned) is pinned
    backend = router.diffusers_backend(registry=pinned)
    assert backend.registry is pinned and router.diffusers_backend(registry=pinned) is backend
    # the older mapping form (tests/support/fixtures.py, tests/generation/test_service.py)
    assert router.registry_for({"registry": pinned}) is pinned
    legacy = router.registry_for({"models_dirs": [], "include_hf_cache": False})
    assert legacy.models_dirs == [] and not legacy.include_hf_cache
    assert router.registry_from_settings is router.registry_for


def test_settings_change_moves_the_shared_backend_to_the_new_folder(
    models_dir: Path, tmp_path: Path, tiny_models
) -> None:
    backend = router.diffusers_backend()
    other = tmp_path / "elsewhere"
    shutil.copytree(tiny_models.sd1, other / "moved")
    with pytest.raises(ModelError, match="Unknown model 'moved'"):
        backend.resolve(_txt2img("moved"))
    settings.update(**{"models/models_dirs": [str(other)]})
    assert router.diffusers_backend() is backend  # pipelines stay loaded
    assert backend.resolve(_txt2img("moved")).path == other / "moved"
