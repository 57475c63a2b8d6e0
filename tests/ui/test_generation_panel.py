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
