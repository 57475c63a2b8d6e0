"""First-run setup: shown once, skippable, the two ways on, again from the Models menu."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from canvasai.backends import models
from canvasai.core import settings
from canvasai.ui.first_run import FirstRunDialog, maybe_show_first_run


def _comfy(home: Path) -> Path:
    from safetensors.numpy import save_file

    root = home / "ComfyUI"
    (root / "comfy").mkdir(parents=True)
    ck = root / "models" / "checkpoints"
    ck.mkdir(parents=True)
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((320, 4, 3, 3), np.float16),
               "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight":
                   np.zeros((77, 8), np.float16)}, str(ck / "dreamshaper.safetensors"))
    return root


def test_skip_marks_the_setup_done(qtbot):
    dlg = FirstRunDialog()
    qtbot.addWidget(dlg)
    from PySide6.QtWidgets import QLabel

    texts = " ".join(label.text() for label in dlg.pages.widget(0).findChildren(QLabel))
    assert "Classic" in texts and "AI models" in texts
    dlg.classic_button.click()
    assert settings.current().models.setup_done


def test_shown_once_and_not_when_prompts_are_off(qtbot, monkeypatch):
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    assert maybe_show_first_run(parent) is None  # tests run with prompts off
    settings.update(**{"ui/confirm_dialogs": True})
    dlg = maybe_show_first_run(parent)
    assert dlg is not None
    dlg.reject()
    assert maybe_show_first_run(parent) is None  # done: not again


def test_use_the_models_i_already_have(qtbot, tmp_path):
    home = tmp_path / "home"
    root = _comfy(home)
    settings.update(**{"models/models_dirs": [str(tmp_path / "own")], "models/include_hf_cache": False})
    dlg = FirstRunDialog(home=home)
    qtbot.addWidget(dlg)
    dlg.have_button.click()
    qtbot.waitUntil(lambda: dlg.installs.list.count() == 1, timeout=5000)
    dlg.installs.apply()
    assert str(root / "models") in settings.current().models.models_dirs
    models.reset_registry()
    assert any(m.name == "checkpoints/dreamshaper" for m in models.registry().rescan())
    dlg.accept()
    assert settings.current().models.setup_done


def test_download_page_lists_the_catalogue(qtbot):
    dlg = FirstRunDialog()
    qtbot.addWidget(dlg)
    dlg.download_button.click()
    assert dlg.pages.currentIndex() == 2
    repos = [dlg.catalog.items[k].text(4) for k in dlg.catalog.items]
    assert "madebyollin/taesd" in repos and "black-forest-labs/FLUX.1-Kontext-dev" in repos


def test_models_menu_reopens_the_setup(qtbot):
    from canvasai.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    titles = [a.text() for a in w.menu_models.actions()]
    assert "First-run &setup…" in titles and "&Models…" in titles
    bar = [a.text() for a in w.menuBar().actions()]
    assert bar.index("&Models") == bar.index("&Help") - 1
