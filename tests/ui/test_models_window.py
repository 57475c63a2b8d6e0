"""The Models window: models grouped with their facts, hide, defaults per task, background
hashes, installs ticked into the settings, and a download against a loopback hub."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends import models
from canvasai.core import settings
from canvasai.ui.models_window import ModelsWindow
from tests.support.fake_hub import FakeHub, tiny_repo

SD1 = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
}


def _save(path: Path, shapes: dict = SD1) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


@pytest.fixture()
def models_dir(tmp_path):
    root = tmp_path / "models"
    _save(root / "dreamshaper.safetensors")
    inp = dict(SD1)
    inp["model.diffusion_model.input_blocks.0.0.weight"] = (320, 9, 3, 3)
    _save(root / "sd15-inpainting.safetensors", inp)
    (root / "old.ckpt").write_bytes(b"not opened")
    settings.update(**{"models/models_dirs": [str(root)], "models/include_hf_cache": False})
    models.reset_registry()
    yield root
    models.reset_registry()


def _texts(win: ModelsWindow) -> list[str]:
    return [it.text(0) for it in win._walk()]


def _select(win: ModelsWindow, name: str) -> None:
    for it in win._walk():
        if it.text(0).startswith(name):
            win.tree.setCurrentItem(it)
            return
    raise AssertionError(name)


def test_models_grouped_with_facts_problems_and_fixes(qtbot, models_dir):
    win = ModelsWindow()
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: len(win.models) == 3, timeout=5000)
    texts = _texts(win)
    assert "Checkpoints and transformers (1)" in texts and "Inpaint / fill (1)" in texts
    assert "Cannot be used (1)" in texts and "SD 1.x" in " ".join(texts) or "Stable" in " ".join(texts)
    _select(win, "dreamshaper")
    d = win.details.text()
    assert "Generate" in d and str(models_dir / "dreamshaper.safetensors") in d
    _select(win, "old")
    d = win.details.text()
    assert "Problem" in d and "pickle" in d.lower() and "Fix" in d and "safetensors" in d
    # SHA-256 computed in the background, shown, and cached in the scan index
    path = models_dir / "dreamshaper.safetensors"
    qtbot.waitUntil(lambda: str(path) in win._hashes, timeout=5000)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert win._hashes[str(path)] == want
    assert models.registry().index.sha256(path) == want
    _select(win, "dreamshaper")
    assert want in win.details.text()


def test_hide_and_show_again(qtbot, models_dir):
    win = ModelsWindow()
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: len(win.models) == 3, timeout=5000)
    _select(win, "old")
    win.toggle_hidden()
    assert str(models_dir / "old.ckpt") in settings.current().models.hidden
    assert not any(t.startswith("old") for t in _texts(win))
    win.show_hidden.setChecked(True)
    _select(win, "old")
    assert "(hidden)" in win.tree.currentItem().text(0)
    win.toggle_hidden()
    assert settings.current().models.hidden == ()


def test_default_model_per_task(qtbot, models_dir):
    win = ModelsWindow()
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: len(win.models) == 3, timeout=5000)
    combo = win.default_combos["inpaint"]
    names = [combo.itemData(i) for i in range(combo.count())]
    assert names == ["", "dreamshaper", "sd15-inpainting"] or set(names) == {"", "dreamshaper", "sd15-inpainting"}
    combo.setCurrentIndex(combo.findData("sd15-inpainting"))
    assert "inpaint=sd15-inpainting" in settings.current().models.defaults
    assert win.default_combos["edit"].count() == 1  # no edit model: Classic only


def test_installs_tab_adds_a_comfyui_folder(qtbot, models_dir, tmp_path):
    home = tmp_path / "home"
    comfy = home / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    _save(comfy / "models" / "checkpoints" / "juggernaut.safetensors")
    win = ModelsWindow(home=home)
    qtbot.addWidget(win)
    win.tabs.setCurrentWidget(win.installs)
    qtbot.waitUntil(lambda: win.installs.list.count() >= 1, timeout=5000)
    assert "ComfyUI" in win.installs.list.item(0).text()
    win.installs.apply()
    assert str(comfy / "models") in settings.current().models.models_dirs
    qtbot.waitUntil(lambda: any(m.name == "checkpoints/juggernaut" for m in win.models),
                    timeout=5000)


def test_download_from_the_catalogue_shows_progress_and_lands_in_the_registry(
        qtbot, models_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from canvasai.backends import catalog, downloads

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 20_000)
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hub = FakeHub(chunk=20_000)
    hub.repos["madebyollin/taesd"] = tiny_repo()
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        win = ModelsWindow()
        qtbot.addWidget(win)
        cat = win.catalog
        seen: list[str] = []
        cat.status.linkActivated  # noqa: B018 - the label exists
        orig = cat._progress
        monkeypatch.setattr(cat, "_progress", lambda p: (seen.append(downloads.describe_progress(p)), orig(p)))
        cat.set_ticked(["taesd"])
        assert cat.download_button.isEnabled() and not cat.accept_box.isVisibleTo(cat)
        with qtbot.waitSignal(cat.downloaded, timeout=10000):
            cat.start()
        assert "downloaded and verified" in cat.status.text()
        assert settings.current().models.include_hf_cache
        qtbot.waitUntil(lambda: any(m.name == "madebyollin/taesd" for m in win.models), timeout=5000)
        assert seen and "of" in seen[-1]
        # a gated, non-commercial entry needs the licence ticked first
        cat.set_ticked(["flux1-dev"])
        assert catalog.get("flux1-dev").needs_acceptance
        assert not cat.download_button.isEnabled()
        cat.accept_box.setChecked(True)
        assert cat.download_button.isEnabled()
        # the hub does not know it here: a plain message, buttons usable again
        with qtbot.waitSignal(cat.download_button.clicked, timeout=100, raising=False):
            cat.start()
        qtbot.waitUntil(lambda: not cat.busy(), timeout=10000)
        assert "not found" in cat.status.text()
    finally:
        hub.stop()


def test_a_refused_pickle_can_be_allowed_and_is_then_read_safely(qtbot, models_dir):
    import torch

    torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
                "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight":
                    torch.zeros(77, 8)}, models_dir / "old.ckpt")
    win = ModelsWindow()
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: len(win.models) == 3, timeout=5000)
    _select(win, "old")
    assert not win.allow_button.isHidden()
    assert win.allow_pickle(confirm=False)
    assert str(models_dir / "old.ckpt") in settings.current().models.allow_pickle
    qtbot.waitUntil(lambda: any(m.name == "old" and m.usable for m in win.models), timeout=10000)


def test_a_cancelled_download_is_not_in_the_cache(tmp_path):
    from canvasai.backends import catalog, downloads

    entry = catalog.get("taesd")
    snap = tmp_path / "models--madebyollin--taesd" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert not downloads.installed(entry, tmp_path)
    (snap / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert downloads.installed(entry, tmp_path)
