"""The generation panel on its own: params round trip, prompt history, typing safety."""

from PySide6.QtCore import QSettings, Qt

from canvasai.backends.api import CLASSIC_MODEL, ControlKind
from canvasai.generation.flows import FlowParams
from canvasai.generation.history import params_from
from canvasai.ui.generation_panel import PROMPT_HISTORY_KEY, GenerationPanel


def test_params_round_trip_through_set_params(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    p = FlowParams(prompt="a fox", negative_prompt="blurry", steps=33, guidance=5.5,
                   strength=0.6, seed=42, batch_size=3, scheduler="euler_a", grow_px=6,
                   feather_px=9, color_match=True, prefill="edge", control=ControlKind.CANNY,
                   control_scale=0.8, upscale_factor=4)
    panel.set_params(p, "inpaint")
    got = panel.params()
    assert panel.flow() == "inpaint"
    for name in ("prompt", "negative_prompt", "steps", "guidance", "strength", "seed",
                 "batch_size", "scheduler", "grow_px", "feather_px", "color_match", "prefill",
                 "control", "control_scale", "upscale_factor"):
        assert getattr(got, name) == getattr(p, name), name
    assert got.model == CLASSIC_MODEL


def test_unlocked_seed_is_random_and_reuse_locks_the_last_one(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    assert panel.params().seed is None
    panel.note_seed(1234)
    panel.reuse_seed.click()
    assert panel.params().seed == 1234


def test_prompt_history_is_remembered_most_recent_first(qtbot):
    QSettings().remove(PROMPT_HISTORY_KEY)
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
