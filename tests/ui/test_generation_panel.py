"""The generation panel on its own: params round trip, prompt history, typing safety."""

from dataclasses import fields

from PySide6.QtCore import Qt

from canvasai.backends.api import CLASSIC_MODEL, ControlKind
from canvasai.core import settings
from canvasai.generation.history import params_from
from canvasai.generation.params import FlowParams
from canvasai.ui.generation_panel import GenerationPanel


def _every_field_changed() -> FlowParams:
    """A FlowParams in which every field differs from its default, derived from the dataclass
    itself: a field added later is covered without touching this test."""
    default = FlowParams()
    changed = {
        bool: lambda v: not v,
        int: lambda v: v + 3 if v < 8 else v // 2,
        float: lambda v: round(v * 0.5 + 0.1, 2),
        str: lambda v: v + "!",
    }
    special = {  # fields whose values come from a fixed list
        "model": "my-model", "seed": 123456789, "scheduler": "euler_a", "upscale_factor": 4,
        "classic_method": "ns", "prefill": "edge", "control": ControlKind.DEPTH,
        "controlnet": "my-controlnet", "margins": (8, 16, 24, 32), "upscale_source": "layer",
        "upscale_target": "new_document", "batch_size": 3, "strength": 0.4,
        "reference_layers": (3, 5),
    }
    values = {}
    for f in fields(FlowParams):
        old = getattr(default, f.name)
        new = special[f.name] if f.name in special else changed[type(old)](old)
        assert new != old, f.name
        values[f.name] = new
    return FlowParams(**values)


def test_use_these_settings_again_restores_every_field(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    p = _every_field_changed()
    panel.set_params(p, "inpaint")
    assert panel.flow() == "inpaint"
    got = panel.params()
    for f in fields(FlowParams):
        assert getattr(got, f.name) == getattr(p, f.name), f.name
    assert got == p


def test_history_entry_round_trips_every_field():
    p = _every_field_changed()
    assert params_from({"params": p.to_dict()}) == p


def test_a_fresh_panel_starts_from_the_settings_defaults(qtbot):
    settings.update(**{"generation/steps": 9, "generation/feather_px": 3})
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    p = panel.params()
    assert (p.steps, p.feather_px) == (9, 3)
    assert p.model == CLASSIC_MODEL


def test_unlocked_seed_is_random_and_reuse_locks_the_last_one(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    assert panel.params().seed is None
    panel.note_seed(1234)
    panel.reuse_seed.click()
    assert panel.params().seed == 1234


def test_prompt_history_is_remembered_most_recent_first(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.prompt.setPlainText("first")
    panel.generate_button.click()
    panel.prompt.setPlainText("second")
    panel.generate_button.click()
    assert [panel.recent.itemData(i) for i in range(1, panel.recent.count())][:2] == [
        "second", "first"]
    panel.recent.activated.emit(2)
    assert panel.prompt.toPlainText() == "first"


def test_tab_in_the_prompt_moves_focus_instead_of_typing(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.prompt.setFocus()
    qtbot.keyClicks(panel.prompt, "ab")
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Tab)
    assert panel.prompt.toPlainText() == "ab"


def test_history_entry_with_unknown_keys_still_restores():
    p = params_from({"params": {"prompt": "x", "margins": [8, 0, 0, 0], "from_the_future": 1}})
    assert p.prompt == "x" and p.margins == (8, 0, 0, 0)


def test_model_family_sets_defaults_and_disables_an_ignored_negative_prompt(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.set_models([("Flux.1 · base", "schnell", "schnell"), ("SD 3.5 · base", "sd35", "sd35"),
                      ("Flux.1 · edit", "kontext", "kontext")])
    panel.set_model_info({"schnell": ("flux", "base", "schnell"), "sd35": ("sd3", "base", ""),
                          "kontext": ("flux", "edit", "kontext")})
    panel.model.setCurrentIndex(panel.model.findData("schnell"))
    assert panel.steps.value() == 4 and not panel.negative.isEnabled()
    assert "no negative prompt" in panel.negative_note.text() or "ignored" in panel.negative_note.text()
    panel.steps.setValue(6)  # the person's own value survives a rescan of the same model
    panel.set_model_info({"schnell": ("flux", "base", "schnell"), "sd35": ("sd3", "base", "")})
    assert panel.steps.value() == 6
    panel.model.setCurrentIndex(panel.model.findData("sd35"))
    assert panel.negative.isEnabled() and panel.steps.value() == 28
    panel.set_model_info({"sd35": ("sd3", "base", "", 5_100_000_000, 7_200_000_000)})
    assert "5.1 GB" in panel.model_note.text() and "about 7 GB" in panel.model_note.text()
    assert panel.steps.value() == 28  # same model: the defaults were not applied again
    panel.model.setCurrentIndex(panel.model.findData(CLASSIC_MODEL))
    assert panel.negative.isEnabled()


def test_edit_task_shows_its_section_and_reference_layers(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.set_flow("edit")
    assert not panel.edit_box.isHidden() and "Instruction" in panel.prompt.placeholderText()
    panel.set_reference_layers([(7, "Character"), (9, "Background")])
    panel.references.item(0).setCheckState(Qt.CheckState.Checked)
    assert panel.params().reference_layers == (7,)
    panel.set_reference_layers([(9, "Background"), (7, "Character renamed")])
    assert panel.params().reference_layers == (7,)
    assert panel.references.item(1).checkState() == Qt.CheckState.Checked
