"""Existing installs: fake ComfyUI, A1111, Forge and InvokeAI trees, the HF cache, a folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from canvasai.backends import installs, models
from canvasai.backends.installs import A1111, COMFYUI, FOLDER, FORGE, HF_CACHE, INVOKEAI
from canvasai.core import settings

SD1_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
}


def _save(path: Path, shapes: dict = SD1_KEYS) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


def comfyui(root: Path) -> Path:
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    _save(root / "models" / "checkpoints" / "dreamshaper_8.safetensors")
    for sub in ("diffusion_models", "unet", "text_encoders", "clip", "vae", "loras",
                "controlnet", "upscale_models"):
        (root / "models" / sub).mkdir(parents=True, exist_ok=True)
    (root / "models" / "upscale_models" / "4x-UltraSharp.pth").write_bytes(b"pickle")
    return root


def a1111(root: Path, forge: bool = False) -> Path:
    _save(root / "models" / "Stable-diffusion" / "v1-5-pruned-emaonly.safetensors")
    for sub in ("Lora", "ControlNet", "VAE", "ESRGAN"):
        (root / "models" / sub).mkdir(parents=True, exist_ok=True)
    (root / "webui.py").write_text("")
    if forge:
        (root / "modules_forge").mkdir()
    return root


def invokeai(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "invokeai.yaml").write_text("schema_version: 4.0.2\n")
    _save(root / "models" / "sd-1" / "main" / "some-model.safetensors")
    return root


def hf_cache(root: Path) -> Path:
    snap = root / "models--org--tiny" / "snapshots" / ("a" * 40)
    _save(snap / "model.safetensors")
    return root


def test_each_layout_is_recognised(tmp_path):
    c = installs.detect(comfyui(tmp_path / "ComfyUI"))
    assert (c.kind, c.models_dir, c.files) == (COMFYUI, tmp_path / "ComfyUI" / "models", 2)
    assert "checkpoints" in c.subfolders and "upscale_models" in c.subfolders
    a = installs.detect(a1111(tmp_path / "stable-diffusion-webui"))
    assert (a.kind, a.files) == (A1111, 1) and a.label.startswith("Stable Diffusion web UI")
    f = installs.detect(a1111(tmp_path / "webui_forge", forge=True))
    assert f.kind == FORGE
    i = installs.detect(invokeai(tmp_path / "invokeai"))
    assert (i.kind, i.models_dir, i.files) == (INVOKEAI, tmp_path / "invokeai" / "models", 1)
    h = installs.detect(hf_cache(tmp_path / "hub"))
    assert (h.kind, h.files) == (HF_CACHE, 1)
    plain = tmp_path / "my models"
    _save(plain / "x.safetensors")
    assert installs.detect(plain).kind == FOLDER
    empty = tmp_path / "empty"
    empty.mkdir()
    assert installs.detect(empty) is None
    assert installs.detect(tmp_path / "missing") is None


def test_pointing_at_a_sub_folder_finds_the_install(tmp_path):
    root = comfyui(tmp_path / "ComfyUI")
    for p in (root / "models", root / "models" / "checkpoints"):
        inst = installs.detect(p)
        assert (inst.kind, inst.root, inst.models_dir) == (COMFYUI, root, root / "models")


def test_usual_places_in_a_home_folder(tmp_path):
    home = tmp_path / "home"
    comfyui(home / "ComfyUI")
    a1111(home / "Documents" / "stable-diffusion-webui")
    invokeai(home / "AI" / "invokeai-v5")
    os.symlink(home / "ComfyUI", home / "AI" / "comfy-link")  # the same install twice
    found = installs.find_installs(home=home, environ={}, include_hf_cache=False)
    assert sorted(i.kind for i in found) == [A1111, COMFYUI, INVOKEAI]
    env_root = invokeai(tmp_path / "elsewhere")
    found = installs.find_installs(home=home, environ={"INVOKEAI_ROOT": str(env_root)},
                                   include_hf_cache=False)
    assert any(i.root == env_root for i in found)


def test_symlink_loops_and_unreadable_folders_do_not_stop_discovery(tmp_path, monkeypatch):
    root = comfyui(tmp_path / "ComfyUI")
    os.symlink(root / "models" / "checkpoints", root / "models" / "checkpoints" / "loop")
    locked = root / "models" / "loras"
    real_scandir = os.scandir

    def scandir(path=".", *a, **k):
        if Path(os.fspath(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    inst = installs.detect(root)
    assert inst.kind == COMFYUI and inst.files == 2
    assert any("loras" in p and "Permission denied" in p for p in inst.problems)


def test_ticked_installs_join_the_models_folders_and_the_registry_sees_them(tmp_path):
    settings.update(**{"models/models_dirs": [str(tmp_path / "own")], "models/include_hf_cache": False})
    c = installs.detect(comfyui(tmp_path / "ComfyUI"))
    a = installs.detect(a1111(tmp_path / "webui"))
    installs.add_to_settings([c, a])
    installs.add_to_settings([c])  # twice: listed once
    dirs = settings.current().models.models_dirs
    assert dirs == (str(tmp_path / "own"), str(c.models_dir), str(a.models_dir))
    models.reset_registry()
    names = {m.name for m in models.registry().rescan() if m.usable}
    assert {"checkpoints/dreamshaper_8", "Stable-diffusion/v1-5-pruned-emaonly"} <= names
    assert (tmp_path / "ComfyUI" / "models" / "checkpoints" / "dreamshaper_8.safetensors").is_file()


def test_hf_cache_turns_the_setting_on(tmp_path):
    settings.update(**{"models/include_hf_cache": False})
    h = installs.detect(hf_cache(tmp_path / "hub"))
    installs.add_to_settings([h])
    assert settings.current().models.include_hf_cache is True
