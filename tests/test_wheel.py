"""The built wheel works on its own: package data (the config-only model folders and the
CLIP tokenizer) ships inside it and is found there, not in the source checkout.

Builds a wheel from a copy of the tree (so nothing is written into the checkout, and no
stale ``build/`` folder can leak into it), unpacks it outside the checkout and, in a
subprocess whose cwd and PYTHONPATH are that folder only (dependencies come from this
venv's site-packages; the venv's editable-install hook is removed first), loads a tiny
single-file SD 1.x checkpoint through the router -> pipeline manager -> from_single_file
path and runs one step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    wheel_dir, ckpt, repo = sys.argv[1], sys.argv[2], sys.argv[3]
    # the venv has an editable install of the checkout: take its import hook out, so a
    # module missing from the wheel fails here instead of coming from the source tree
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]

    import canvasai
    from canvasai.backends import models, router
    from canvasai.backends.api import GenerationRequest, Task
    from canvasai.backends.diffusion import pipelines, tokenizer_loading
    from canvasai.backends.models import BASE, SD1, ModelInfo

    class Ctx:
        job_id = 1
        steps = []
        def check_cancelled(self): pass
        def progress(self, step, total): self.steps.append((step, total))
        def wants_preview(self): return False
        def preview(self, step, rgba): pass
        def note(self, message): pass

    info = models.registry().resolve(ckpt)
    bundled = pipelines.config_folder_for(
        ModelInfo("x", Path(wheel_dir) / "x.safetensors", SD1, BASE, "single_file"))
    request = GenerationRequest(Task.TXT2IMG, model=ckpt, prompt="a photo of a cat",
                                steps=1, seed=3, width=64, height=64)
    ctx = Ctx()
    result = router.backend_for(request).run(request, ctx)
    modules = {name: getattr(m, "__file__", None) or "" for name, m in sys.modules.items()
               if name == "canvasai" or name.startswith("canvasai.")}
    print("RESULT " + json.dumps({
        "canvasai": canvasai.__file__,
        "modules": modules,
        "configs_root": str(pipelines.configs_root()),
        "bundled_sd1": str(bundled),
        "bundled_unet_config": (bundled / "unet" / "config.json").is_file(),
        "tokenizers": [k[2] for k in tokenizer_loading._kept],
        "kind": [info.family, info.kind, info.format],
        "shape": list(result.images[0].shape),
        "steps": ctx.steps,
        # (the venv itself may sit in the checkout: its site-packages is allowed)
        "env_into_repo": sorted(
            k for k, v in os.environ.items()
            if any(e.startswith(repo) and not e.startswith(sys.prefix)
                   for e in v.split(os.pathsep))),
        "sys_path_into_repo": [p for p in sys.path if p.startswith(repo)
                               and "site-packages" not in p],
    }))
    """
)


def _copy_tree(dest: Path) -> Path:
    """The files the build reads: pyproject, README and the package (no caches)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "canvasai",
        dest / "canvasai",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    return dest


def _clean_env(tmp: Path, wheel_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CANVASAI_", "PYTHON", "PYTEST", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )
    env = {k: v for k, v in env.items() if str(REPO) not in v}
    env.update(
        PYTHONPATH=str(wheel_dir),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        DIFFUSERS_OFFLINE="1",
        HF_HUB_CACHE=str(tmp / "hub"),
        CANVASAI_DATA_DIR=str(tmp / "data"),
        CANVASAI_MODELS_DIR=str(tmp / "models"),
        CANVASAI_DEVICE="cpu",
    )
    return env


def test_wheel_runs_a_single_file_model_outside_the_checkout(tmp_path_factory) -> None:
    pytest.importorskip("setuptools")
    pytest.importorskip("diffusers")
    from tests.support.single_file import write_tiny_sd1_single_file

    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(REPO)
    src = _copy_tree(tmp / "src")
    dist = tmp / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("canvasai-*.whl")
    wheel_dir = tmp / "site"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(wheel_dir)
    for needed in (
        "canvasai/resources/model_configs/sd1-base/unet/config.json",
        "canvasai/resources/model_configs/sdxl-inpaint/model_index.json",
        "canvasai/resources/model_configs/tokenizer/vocab.json",
        "canvasai/resources/model_configs/tokenizer/merges.txt",
        "canvasai/resources/style.qss",
    ):
        assert needed in names, needed

    ckpt = write_tiny_sd1_single_file(tmp / "models" / "tiny-clip-sd1.safetensors")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(wheel_dir), str(ckpt), str(REPO)],
        cwd=tmp,
        env=_clean_env(tmp, wheel_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))

    site = str(wheel_dir)
    assert out["canvasai"].startswith(site)
    outside = {n: f for n, f in out["modules"].items() if f and not f.startswith(site)}
    assert not outside, outside
    assert out["env_into_repo"] == [] and out["sys_path_into_repo"] == []
    assert out["configs_root"] == str(wheel_dir / "canvasai" / "resources" / "model_configs")
    assert out["bundled_sd1"].startswith(out["configs_root"]) and out["bundled_unet_config"]
    # the checkpoint's sidecar has no tokenizer: the one shipped in the wheel was used
    assert out["tokenizers"] == [str(Path(out["configs_root"], "tokenizer").resolve())]
    assert out["kind"] == ["sd1", "base", "single_file"]
    assert out["shape"] == [64, 64, 4] and out["steps"][-1][0] == out["steps"][-1][1]
