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
        "reference_layers": (3, 5), "loras": (("Lora/ink", 0.75), ("missing", 1.0)),
        "style": "Photograph", "upscale_method": "refine",
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


# -- what the panel shows for the task, the model and the document --------------------------

def _panel_with_models(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.set_models([("SD 1.5 · base", "sd15", "sd15")])
    panel.set_model_info({"sd15": ("sd1", "base", "")})
    panel.resize(340, 700)
    panel.show()
    return panel


def test_classic_hides_sampling_and_says_why(qtbot):
    panel = _panel_with_models(qtbot)
    panel.set_flow("inpaint")
    panel.model.setCurrentIndex(panel.model.findData(CLASSIC_MODEL))
    assert panel.sampling_box.isHidden() and panel.negative.isHidden()
    assert not panel.hidden_note.isHidden()
    assert "seed" in panel.hidden_note.text() and "Classic" in panel.hidden_note.text()
    assert panel._inpaint_form.isRowVisible(panel.classic_method)
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    assert not panel.sampling_box.isHidden() and not panel.negative.isHidden()
    assert not panel._inpaint_form.isRowVisible(panel.classic_method)
    assert "Classic method" in panel.hidden_note.text()
    panel.set_flow("generate")  # text -> image has no strength
    assert not panel._sampling_form.isRowVisible(panel.strength)
    assert "strength" in panel.hidden_note.text()


def test_classic_says_which_tasks_need_a_model(qtbot):
    panel = _panel_with_models(qtbot)
    panel.model.setCurrentIndex(panel.model.findData(CLASSIC_MODEL))
    panel.set_flow("sketch")
    assert "can't" in panel.task_note.text() and not panel.task_note.isHidden()
    panel.set_flow("upscale")
    assert panel.task_note.isHidden()
    form = panel._upscale_form
    assert panel.upscale_target.currentData() == "resample"  # the default: no AI
    assert not form.isRowVisible(panel.sharpen) and not form.isRowVisible(panel.upscale_method)
    assert "Resample every layer" in panel.hidden_note.text()
    panel.upscale_target.setCurrentIndex(panel.upscale_target.findData("layer"))
    assert "new layer" in panel.upscale_target_note.text()
    assert form.isRowVisible(panel.sharpen)
    assert not form.isRowVisible(panel.tile) and not form.isRowVisible(panel.upscale_method)


def test_upscale_offers_each_method_explicitly_with_its_settings(qtbot):
    panel = _panel_with_models(qtbot)
    panel.set_flow("upscale")
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    form = panel._upscale_form
    notes = set()
    for target in ("resample", "layer", "new_document"):
        panel.upscale_target.setCurrentIndex(panel.upscale_target.findData(target))
        notes.add(panel.upscale_target_note.text())
    assert len(notes) == 3 and "" not in notes  # each result says what it does
    assert form.isRowVisible(panel.upscale_method)
    assert panel.upscale_method.currentData() == "lanczos"  # never a silent diffusion pass
    assert not form.isRowVisible(panel.upscale_steps)
    panel.upscale_method.setCurrentIndex(panel.upscale_method.findData("refine"))
    assert "tile" in panel.upscale_method_note.text()
    assert form.isRowVisible(panel.upscale_strength) and form.isRowVisible(panel.upscale_steps)
    assert form.isRowVisible(panel.tile)
    panel.upscale_strength.setValue(0.4)
    panel.upscale_steps.setValue(12)
    p = panel.params()
    assert (p.upscale_target, p.upscale_method) == ("new_document", "refine")
    assert (p.upscale_refine_strength, p.upscale_steps) == (0.4, 12)


def test_auto_says_what_it_will_do_and_why_before_it_runs(qtbot):
    from canvasai.document.document import Document
    from canvasai.generation import flows
    from tests.ui.test_generation_flows import paint_mask

    panel = _panel_with_models(qtbot)
    doc = Document(64, 64, background=None)
    panel.set_document(doc)
    panel.set_flow("auto")
    assert "Auto will generate from text: nothing is painted yet" in panel.task_note.text()
    paint_mask(doc, 32, 32, 6)
    qtbot.waitUntil(lambda: "a mask is painted" in panel.task_note.text())
    assert flows.auto_flow(doc, panel.params()) == "inpaint"
    assert not panel.inpaint_box.isHidden()  # Auto shows the chosen task's options
    panel.set_margins((64, 0, 0, 0))
    assert "Auto will outpaint" in panel.task_note.text()
    doc.set_layer_properties(doc.active_layer, is_sketch=True)
    panel.set_margins((0, 0, 0, 0))
    assert "inpaint" in panel.task_note.text()  # the mask still wins over the sketch


def test_only_inside_the_mask_says_when_it_is_ignored(qtbot):
    from canvasai.document.document import Document
    from tests.ui.test_generation_flows import paint_mask

    panel = _panel_with_models(qtbot)
    doc = Document(64, 64)
    panel.set_document(doc)
    panel.set_flow("sketch")
    assert "Ignored" in panel.sketch_mask_note.text() and not panel.sketch_mask_note.isHidden()
    paint_mask(doc, 32, 32, 6)
    qtbot.waitUntil(lambda: panel.sketch_mask_note.isHidden())


def test_errors_stay_in_a_fixed_place_and_never_move_the_button(qtbot):
    panel = _panel_with_models(qtbot)
    y = panel.generate_button.mapTo(panel, panel.generate_button.rect().topLeft()).y()
    panel.show_error("Something went wrong. " * 40)
    qtbot.wait(10)
    assert panel.generate_button.mapTo(panel, panel.generate_button.rect().topLeft()).y() == y
    assert panel.message.text().startswith("Something went wrong")


def test_status_belongs_to_its_job_and_resets_when_the_settings_change(qtbot):
    panel = _panel_with_models(qtbot)
    panel.model.setCurrentIndex(panel.model.findData(CLASSIC_MODEL))
    panel.set_flow("upscale")
    panel.set_busy(True)
    panel.set_status("OpenCV Lanczos resize…")
    assert "Upscale" in panel.job_label and "Classic" in panel.step_label.toolTip()
    panel.set_busy(False)
    panel.set_status("Done: 1 candidate(s)")
    assert panel.step_label.text() == "Done: 1 candidate(s)"
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    assert panel.step_label.text() == "Ready"


def test_the_docked_panel_follows_the_window_document_also_floating(qtbot):
    from canvasai.app import _attach_generation
    from canvasai.document.document import Document
    from canvasai.ui.main_window import MainWindow
    from tests.ui.test_generation_flows import paint_mask

    w = MainWindow()
    qtbot.addWidget(w)
    _attach_generation(w)
    try:
        panel = w.generation.panel
        w.generation.panel_dock.setFloating(True)
        doc = Document(64, 64)
        w.set_document(doc)
        panel.set_flow("auto")
        qtbot.waitUntil(lambda: "Auto will refine" in panel.task_note.text()
                        or "Auto will generate" in panel.task_note.text())
        paint_mask(doc, 20, 20, 5)
        qtbot.waitUntil(lambda: "a mask is painted" in panel.task_note.text())
    finally:
        w.generation.shutdown()


def test_loras_of_the_models_family_with_weights_trigger_words_and_styles(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.set_models([("SD 1.x · base", "dreamshaper", "dreamshaper")])
    panel.set_model_info({
        "dreamshaper": ("sd1", "base", "", 2_000_000_000, 3_000_000_000),
        "Lora/ink": ("sd1", "lora", "", 1000, 0, ("inkwash", "fox")),
        "Lora/any": ("unknown", "lora", "", 1000, 0, ()),
        "loras/flux-grain": ("flux", "lora", "", 1000, 0, ()),
    })
    panel.model.setCurrentIndex(panel.model.findData("dreamshaper"))
    listed = [panel.loras.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.loras.count())]
    assert listed == ["Lora/any", "Lora/ink"]  # the Flux LoRA is not offered for SD 1.x
    assert panel.lora_completion.editor is panel.prompt  # <lora: completes the same names
    assert sorted(panel._lora_names()) == ["Lora/any", "Lora/ink"]
    ink = panel.loras.item(1)
    ink.setCheckState(Qt.CheckState.Checked)
    panel.loras.setCurrentItem(ink)
    panel.lora_weight.setValue(0.6)
    assert panel.params().loras == (("Lora/ink", 0.6),)
    panel.prompt.setPlainText("a fox")
    panel.lora_triggers.click()
    assert panel.prompt.toPlainText() == "a fox, inkwash"  # "fox" is in the prompt already
    ink.setCheckState(Qt.CheckState.Unchecked)
    assert panel.params().loras == ()
    i = panel.style.findData("Quick draft (SD 1.x)")
    assert i > 0 and panel.style.findData("Detailed (Flux.1 dev)") < 0
    panel.style.setCurrentIndex(i)
    panel.style.activated.emit(i)
    p = panel.params()
    assert (p.style, p.steps, p.scheduler) == ("Quick draft (SD 1.x)", 12, "dpmpp_2m_karras")
    assert p.prompt == "a fox, inkwash"


# -- layer roles and styles as files ---------------------------------------------------------

def _role_document():
    import numpy as np

    from canvasai.document.document import Document
    from canvasai.document.layer import ControlRole, ReferenceRole, RegionRole

    doc = Document(64, 64)
    for name, role in (("Lines", ControlRole(kind="lineart", strength=0.8, end=0.5)),
                       ("Depth", ControlRole(kind="depth")),
                       ("Fox photo", ReferenceRole(kind="style")),
                       ("Sky", RegionRole("a stormy sky"))):
        layer = doc.add_layer(name)
        layer.surface.write(0, 0, np.full((16, 16, 4), 120, np.uint8))
        layer.role = role
    doc.history.clear()
    return doc


def test_the_control_section_lists_the_layers_in_use_instead_of_one_control_type(qtbot):
    panel = _panel_with_models(qtbot)
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    plain = __import__("canvasai.document.document", fromlist=["Document"]).Document(64, 64)
    panel.set_document(plain)
    panel.set_flow("sketch")
    # no control layer: the one control type renders the active layer (and the CLI's way)
    assert panel.roles_box.isHidden() and not panel.control.isHidden()
    assert not panel.control_fallback_note.isHidden()
    doc = _role_document()
    panel.set_document(doc)
    rows = [panel.role_list.item(i).text() for i in range(panel.role_list.count())]
    assert rows == ["Sky — region “a stormy sky”", "Fox photo — style ref 0.60",
                    "Depth — depth 1.00", "Lines — line art 0.80, 0–50 %"]
    assert not panel.roles_box.isHidden() and panel.control.isHidden()
    last = panel.role_list.visualItemRect(panel.role_list.item(3))
    assert panel.role_list.viewport().rect().contains(last)  # every row shows, none cut
    assert panel.control_scale.isHidden() and panel.control_fallback_note.isHidden()
    assert "This job uses 2 control layers, 1 reference, 1 region." in panel.roles_note.text()
    assert "regional" not in panel.roles_note.text()  # SD 1.x follows regions
    panel.set_flow("auto")
    assert "Auto will render the control layers: 2 control layers are visible; uses 2 " \
           "control layers, 1 reference, 1 region" in panel.task_note.text()
    # hiding a layer leaves it out, and the panel says so
    lines = next(la for la in doc.layers if la.name == "Lines")
    doc.set_layer_properties(lines, visible=False)
    qtbot.waitUntil(lambda: "(hidden: not used)" in panel.role_list.item(3).text())
    assert "“Lines” is a control layer" not in panel.task_note.text()
    assert "hidden, so not used: “Lines”" in panel.task_note.text()
    panel.set_flow("outpaint")
    assert "Outpaint uses none of them." in panel.roles_note.text()


def test_the_panel_says_which_families_do_not_follow_regions(qtbot):
    panel = _panel_with_models(qtbot)
    panel.set_models([("SD 1.5 · base", "sd15", "sd15"), ("Flux · base", "flux-dev", "flux-dev")])
    panel.set_model_info({"sd15": ("sd1", "base", ""), "flux-dev": ("flux", "base", "dev")})
    panel.set_document(_role_document())
    panel.set_flow("generate")
    panel.model.setCurrentIndex(panel.model.findData("flux-dev"))
    from canvasai.backends.diffusion import families

    flux = families.find("flux")
    if getattr(flux, "supports_regions", False):  # a family that learnt regions says nothing
        assert "regional" not in panel.roles_note.text()
    else:
        assert "does not follow regional prompts" in panel.roles_note.text()
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    assert "regional" not in panel.roles_note.text()
    panel.model.setCurrentIndex(panel.model.findData(CLASSIC_MODEL))
    assert "Classic (no model) uses none of them." in panel.roles_note.text()


def test_styles_are_imported_and_exported_through_the_buttons(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from canvasai.generation import styles
    from canvasai.generation.styles import Style

    monkeypatch.setattr(styles, "user_dir", lambda: tmp_path / "mine")
    panel = _panel_with_models(qtbot)
    panel.model.setCurrentIndex(panel.model.findData("sd15"))
    good = styles.save(Style(name="Ink", family="sd1", steps=17, prompt="{prompt}, ink"),
                       tmp_path / "ink.json")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(good), ""))
    panel.import_style_button.click()
    assert panel.style.currentData() == "Ink" and panel.steps.value() == 17
    assert "Imported the style “Ink”" in panel.message.text()
    out = tmp_path / "shared" / "ink-copy.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    panel.export_style_button.click()
    assert styles.load(out).prompt == "{prompt}, ink" and "Exported" in panel.message.text()
    # with no style picked, the panel's own settings are exported as one
    panel.style.setCurrentIndex(0)
    panel.steps.setValue(23)
    panel.export_style_file(str(tmp_path / "my_settings.json"))
    mine = styles.load(tmp_path / "my_settings.json")
    assert (mine.name, mine.steps, mine.family) == ("my settings", 23, "sd1")
    # a bad file: the reason, in the message area
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "Loud", "guidance": -3}')
    assert not panel.import_style_file(str(bad))
    assert "not imported" in panel.message.text() and "guidance -3 is outside" in panel.message.text()
