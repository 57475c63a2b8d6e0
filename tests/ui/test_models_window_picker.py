"""The model picker remembers the last model per task (across launches), starts from the
default per task, skips hidden models, and the first job on a model says it is loading."""

from __future__ import annotations

from types import SimpleNamespace

from canvasai.core import settings
from canvasai.ui.generation_panel import GenerationPanel
from canvasai.ui.models_window import PickerMemory

MODELS = [("SD 1.x · base", "dreamshaper  (2.1 GB)", "dreamshaper"),
          ("SD 1.x · inpaint", "sd15-inpainting", "sd15-inpainting")]


def _panel(qtbot) -> tuple[GenerationPanel, PickerMemory]:
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    mem = PickerMemory(panel)
    with mem.filling():
        panel.set_models(MODELS)
    mem.restore()
    return panel, mem


def test_last_model_per_task_survives_a_relaunch(qtbot):
    panel, _mem = _panel(qtbot)
    panel.set_flow("inpaint")
    panel.model.setCurrentIndex(panel.model.findData("sd15-inpainting"))
    panel.set_flow("generate")
    panel.model.setCurrentIndex(panel.model.findData("dreamshaper"))
    assert set(settings.current().models.last_used) == {"inpaint=sd15-inpainting",
                                                         "generate=dreamshaper"}
    panel.set_flow("inpaint")
    assert panel.model.currentData() == "sd15-inpainting"
    panel.set_flow("generate")
    assert panel.model.currentData() == "dreamshaper"
    # the next launch: a fresh panel, the models come from a scan
    settings.reset()
    fresh, _m = _panel(qtbot)
    fresh.set_flow("inpaint")
    assert fresh.model.currentData() == "sd15-inpainting"


def test_default_per_task_when_nothing_was_used(qtbot):
    settings.update(**{"models/defaults": ["inpaint=sd15-inpainting"]})
    panel, _mem = _panel(qtbot)
    assert panel.model.currentData() == "classic"  # generate has no default
    panel.set_flow("inpaint")
    assert panel.model.currentData() == "sd15-inpainting"


def test_refilling_the_picker_is_not_a_choice(qtbot):
    panel, mem = _panel(qtbot)
    panel.set_flow("generate")
    panel.model.setCurrentIndex(panel.model.findData("dreamshaper"))
    with mem.filling():
        panel.set_models([])
    assert "generate=dreamshaper" in settings.current().models.last_used


def test_first_job_on_a_model_says_loading_with_its_size(qtbot):
    panel, mem = _panel(qtbot)
    panel.set_model_info({"dreamshaper": ("sd1", "base", "", 2_130_000_000, 3_000_000_000)})
    job = SimpleNamespace(request=SimpleNamespace(model="dreamshaper"))
    assert mem.starting_text(job) == "Loading dreamshaper (2.1 GB)…"
    assert mem.starting_text(job) == "Starting…"  # loaded: reused
    assert mem.starting_text(SimpleNamespace(request=SimpleNamespace(model="classic"))) == "Starting…"
    other = SimpleNamespace(request=SimpleNamespace(model="/data/x/flux1-dev.safetensors"))
    assert mem.starting_text(other) == ("Loading flux1-dev.safetensors… "
                                        "dreamshaper is unloaded to make room.")
    assert mem.starting_text(job).startswith("Loading dreamshaper (2.1 GB)…")


def test_hidden_models_leave_the_picker(qtbot, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from canvasai.backends import models
    from canvasai.ui.generation_controller import _ModelScan, _ScanTask

    root = tmp_path / "models"
    root.mkdir()
    for name in ("a", "b"):
        save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((320, 4, 3, 3), np.float16),
                   "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight":
                       np.zeros((77, 8), np.float16)}, str(root / f"{name}.safetensors"))
    settings.update(**{"models/models_dirs": [str(root)], "models/include_hf_cache": False,
                       "models/hidden": [str(root / "b.safetensors")]})
    models.reset_registry()
    got: list = []
    sig = _ModelScan()
    sig.done.connect(lambda found, *_: got.append(found))
    _ScanTask(sig).run()
    assert [v for _g, _l, v in got[0]] == ["a"]
    models.reset_registry()
