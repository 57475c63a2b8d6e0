"""Layers panel: every operation reaches the document as one undoable step, and the list follows."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt

from canvasai.document.blend import BlendMode
from canvasai.document.document import Document
from canvasai.ui.layers_panel import LayersPanel


@pytest.fixture
def setup(qtbot):
    doc = Document(64, 64)  # Background, Layer 1
    doc.add_layer("Top")
    doc.history.clear()
    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_document(doc)
    panel.show()
    return panel, doc


def names_in_list(panel: LayersPanel) -> list[str]:
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_list_shows_top_layer_first_and_active_highlight(setup):
    panel, doc = setup
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]
    assert panel.list.currentRow() == 0
    doc.set_active(0)
    assert panel.list.currentRow() == 2
    panel.list.setCurrentRow(1)
    assert doc.active_layer.name == "Layer 1"


def test_add_delete_duplicate_buttons_undoable(setup):
    panel, doc = setup
    panel.add_button.click()
    assert len(doc.layers) == 4 and panel.list.count() == 4
    assert panel.list.currentRow() == 0  # the new layer is active
    panel.duplicate_button.click()
    assert doc.active_layer.name.endswith("copy") and panel.list.count() == 5
    panel.delete_button.click()
    assert len(doc.layers) == 4
    for _ in range(3):
        doc.undo()
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_reorder_by_model_move(setup, qtbot):
    panel, doc = setup
    model = panel.list.model()
    # drag "Background" (row 2) to the top (row 0), the way a drop does
    assert model.moveRow(QModelIndex(), 2, QModelIndex(), 0)
    qtbot.waitUntil(lambda: [la.name for la in doc.layers] == ["Layer 1", "Top", "Background"])
    assert names_in_list(panel) == ["Background", "Top", "Layer 1"]
    doc.undo()
    assert [la.name for la in doc.layers] == ["Background", "Layer 1", "Top"]
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_move_buttons(setup):
    panel, doc = setup
    panel.down_button.click()
    assert [la.name for la in doc.layers] == ["Background", "Top", "Layer 1"]
    assert not panel.up_button.isEnabled() or doc.active_index < 2


def test_rename_and_visibility_via_items(setup, qtbot):
    panel, doc = setup
    top = doc.layers[2]
    panel.list.item(0).setText("Sky")
    qtbot.waitUntil(lambda: top.name == "Sky")
    panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: not top.visible)
    assert panel.list.item(0).checkState() == Qt.CheckState.Unchecked
    assert doc.history.entries == ["Rename layer to “Sky”", "Hide “Sky”"]
    doc.undo()
    doc.undo()
    assert top.name == "Top" and top.visible
    assert names_in_list(panel)[0] == "Top"


def test_opacity_blend_lock_controls(setup):
    panel, doc = setup
    top = doc.layers[2]
    panel.opacity.setValue(40)
    assert top.opacity == pytest.approx(0.4)
    panel.blend.setCurrentIndex(panel.blend.findData(BlendMode.MULTIPLY))
    assert top.blend_mode is BlendMode.MULTIPLY
    panel.lock.setChecked(True)
    assert top.locked
    assert not panel.list.item(0).icon().isNull()
    assert len(doc.history.entries) == 3
    for _ in range(3):
        doc.undo()
    assert (top.opacity, top.blend_mode, top.locked) == (1.0, BlendMode.NORMAL, False)
    assert panel.opacity.value() == 100 and BlendMode(panel.blend.currentData()) is BlendMode.NORMAL
    assert not panel.lock.isChecked()


def test_blend_modes_offered(setup):
    panel, _ = setup
    offered = [panel.blend.itemData(i) for i in range(panel.blend.count())]
    assert offered[:6] == [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN,
                           BlendMode.OVERLAY, BlendMode.DARKEN, BlendMode.LIGHTEN]


def test_merge_down_and_flatten(setup):
    panel, doc = setup
    doc.write_pixels(doc.layers[2], 0, 0, np.full((8, 8, 4), (255, 0, 0, 255), np.uint8))
    panel.merge_button.click()
    assert names_in_list(panel) == ["Layer 1", "Background"]
    assert tuple(doc.layers[1].surface.read(doc.rect)[2, 2]) == (255, 0, 0, 255)
    panel.flatten()
    assert panel.list.count() == 1
    assert not panel.merge_button.isEnabled() and not panel.delete_button.isEnabled()
    doc.undo()
    doc.undo()
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_opacity_drag_previews_live_and_records_one_undo_step(setup, qtbot):
    panel, doc = setup
    layer = doc.active_layer
    n = len(doc.history.entries)
    panel.opacity.setSliderDown(True)
    panel._opacity_drag_started()
    panel.opacity.setValue(70)
    assert layer.opacity == 0.7 and len(doc.history.entries) == n
    panel.opacity.setValue(40)
    panel.opacity.setSliderDown(False)
    panel._commit_opacity()
    assert layer.opacity == 0.4 and len(doc.history.entries) == n + 1
    doc.undo()
    assert layer.opacity == 1.0


def _row_image(panel, row):
    return panel.list.viewport().grab(panel.list.visualItemRect(panel.list.item(row))).toImage()


def _action(menu, *path):
    """The action reached through submenus by their texts, e.g. ("Use as", "Control layer", "Depth…")."""
    for text in path[:-1]:
        menu = next(a.menu() for a in menu.actions() if a.menu() is not None and a.text() == text)
    return next(a for a in menu.actions() if a.text() == path[-1])


def test_each_role_has_a_visible_marker_with_a_tooltip(setup):
    from canvasai.document.layer import ControlRole, ReferenceRole, RegionRole
    from canvasai.ui.layers_panel import BADGE, BADGE_COLOR

    panel, doc = setup
    top = doc.layers[-1]
    plain = _row_image(panel, 0)
    panel.set_sketch(top, True)  # the old sketch flag: a scribble control layer
    item = panel.list.item(0)
    assert item.data(BADGE) == "scribble" and "Control layer: Scribble" in item.toolTip()
    assert item.text() == "Top"  # the name stays editable as it is
    assert _row_image(panel, 0) != plain  # the marker is painted
    images = set()
    for role, tag, words in ((ControlRole(kind="depth", strength=0.8), "depth", "strength 0.80"),
                             (ReferenceRole(kind="style"), "ref", "Reference image: style"),
                             (RegionRole("a red fox"), "region", "“a red fox”")):
        panel.set_role(top, role)
        item = panel.list.item(0)
        assert item.data(BADGE) == tag and words in item.toolTip()
        assert "Right-click ▸ Use as" in item.toolTip()
        images.add((item.data(BADGE_COLOR), _row_image(panel, 0).bits().tobytes()))
        assert panel.role_note.text().startswith(role.describe()) and not panel.role_note.isHidden()
    assert len({c for c, _ in images}) == 3  # one colour per kind of role
    doc.set_layer_properties(top, visible=False)
    assert "Hidden: not used now." in panel.list.item(0).toolTip()
    assert "(hidden: not used)" in panel.role_note.text()
    panel.set_sketch(doc.layers[1], True)  # several control layers at once
    panel.set_role(top, ControlRole(kind="canny"))
    assert [la.role_type for la in doc.layers] == ["", "control", "control"]
    panel.set_role(top, None)
    assert panel.list.item(0).data(BADGE) is None and panel.role_note.isHidden()


def test_use_as_control_opens_the_editor_and_ok_is_one_undo_step(setup, qtbot):
    from PySide6.QtWidgets import QDialogButtonBox, QMenu

    from canvasai.document.layer import ControlRole

    panel, doc = setup
    top = doc.layers[-1]
    menu = QMenu()
    panel.fill_role_menu(menu, top)
    _action(menu, "Use as", "Control layer", "Depth…").trigger()
    editor = panel.role_editor
    qtbot.waitExposed(editor)
    assert editor.control_kind.currentData() == "depth" and "depth" in editor.control_note.text()
    editor.control_strength.setValue(0.7)
    editor.control_end.setValue(60)
    editor.control_is_map.setChecked(True)
    n = len(doc.history.entries)
    editor.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert top.role == ControlRole(kind="depth", strength=0.7, end=0.6, preprocess=False)
    assert len(doc.history.entries) == n + 1 and editor.isHidden()
    # a bad range is refused in the editor with a sentence; nothing changes
    menu = QMenu()
    panel.fill_role_menu(menu, top)
    _action(menu, "Edit role…").trigger()
    editor = panel.role_editor
    assert editor.control_kind.currentData() == "depth" and editor.control_end.value() == 60
    editor.control_start.setValue(80)
    editor.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert not editor.error.isHidden() and "start before it ends" in editor.error.text()
    assert not editor.isHidden() and top.role.start == 0.0
    editor.reject()
    # Normal layer, then undo brings the control layer back
    menu = QMenu()
    panel.fill_role_menu(menu, top)
    _action(menu, "Use as", "Normal layer").trigger()
    assert top.role is None
    doc.undo()
    assert top.role == ControlRole(kind="depth", strength=0.7, end=0.6, preprocess=False)


def test_reference_and_region_editors(setup, qtbot):
    from PySide6.QtWidgets import QDialogButtonBox, QMenu

    from canvasai.document.layer import ReferenceRole, RegionRole

    panel, doc = setup
    layer = doc.layers[1]
    menu = QMenu()
    panel.fill_role_menu(menu, layer)
    _action(menu, "Use as", "Region prompt…").trigger()
    editor = panel.role_editor
    ok = editor.buttons.button(QDialogButtonBox.StandardButton.Ok)
    ok.click()  # no prompt yet: refused
    assert "needs a prompt" in editor.error.text() and layer.role is None
    qtbot.keyClicks(editor.region_prompt, "a stormy sky")
    qtbot.keyClicks(editor.region_negative, "sun")
    ok.click()
    assert layer.role == RegionRole("a stormy sky", "sun")
    menu = QMenu()
    panel.fill_role_menu(menu, layer)
    _action(menu, "Use as", "Reference image…").trigger()
    editor = panel.role_editor
    editor.reference_kind.setCurrentIndex(editor.reference_kind.findData("composition"))
    assert "layout" in editor.reference_note.text()
    editor.reference_strength.setValue(1.5)
    editor.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert layer.role == ReferenceRole(kind="composition", strength=1.5)
    # the Role button offers the same menu for the active layer
    doc.set_active(layer)
    panel._fill_role_button_menu()
    assert _action(panel.role_menu, "Use as", "Reference image…").isChecked()


def test_preprocess_into_a_new_control_layer_in_one_undo_step(setup):
    from canvasai.document.layer import ControlRole

    panel, doc = setup
    photo = doc.layers[1]
    px = np.full((40, 40, 4), 255, np.uint8)
    px[10:30, 10:30, :3] = 0  # a dark square: four edges
    doc.write_pixels(photo, 0, 0, px)
    doc.set_layer_properties(photo, role=ControlRole(kind="canny", strength=0.6))
    n = len(doc.layers), len(doc.history.entries)
    panel.preprocess_layer(photo, "canny")  # small: done at once
    new = doc.layers[2]
    assert new.name == "Layer 1 (canny)" and new.role == ControlRole(kind="canny", strength=0.6,
                                                                      preprocess=False)
    edges = new.surface.read(doc.rect)
    assert edges[10, 10:30, 0].max() == 255 and edges[20, 20, 0] == 0  # white edges on black
    assert not photo.visible  # the photo is not used twice
    assert (len(doc.layers), len(doc.history.entries)) == (n[0] + 1, n[1] + 1)
    assert "control layer" in panel.role_note.text()
    doc.undo()
    assert len(doc.layers) == n[0] and photo.visible


def test_a_large_layer_is_preprocessed_off_the_gui_thread(qtbot):
    doc = Document(640, 640)
    layer = doc.active_layer
    px = np.full((640, 640, 4), 255, np.uint8)
    px[100:500, 100:500, :3] = 30
    doc.write_pixels(layer, 0, 0, px)
    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_document(doc)
    panel.preprocess_layer(layer, "lineart")
    assert panel.preprocessing == 1 and len(doc.layers) == 2  # returned before the map exists
    assert "Making a line art map" in panel.role_note.text()
    qtbot.waitUntil(lambda: len(doc.layers) == 3, timeout=20000)
    assert panel.preprocessing == 0 and doc.layers[2].role.kind == "lineart"
    assert doc.layers[2].surface.read(doc.rect)[..., 0].any()


def test_the_list_shows_more_than_four_rows(qtbot):
    doc = Document(32, 32)
    for _ in range(6):
        doc.add_layer()
    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_document(doc)
    panel.resize(260, 10)  # as small as the dock allows
    panel.show()
    qtbot.waitExposed(panel)
    visible = [i for i in range(panel.list.count())
               if panel.list.viewport().rect().contains(panel.list.visualItemRect(panel.list.item(i)))]
    assert len(visible) >= 5


def test_new_layer_names_do_not_skip_numbers():
    doc = Document(32, 32)  # Background, Layer 1
    assert doc.add_layer().name == "Layer 2"
    assert doc.add_layer().name == "Layer 3"
    doc.remove_layer(doc.layers[1])  # Layer 1 gone: numbers keep counting up, none reused
    assert doc.add_layer().name == "Layer 4"


def test_a_hidden_layers_role_tag_fades(setup):
    from canvasai.document.layer import ControlRole

    panel, doc = setup
    top = doc.layers[-1]
    panel.set_role(top, ControlRole(kind="depth"))
    shown = _row_image(panel, 0)
    doc.set_layer_properties(top, visible=False)
    hidden = _row_image(panel, 0)
    w = shown.width()
    tag = [(x, shown.height() // 2) for x in range(w - 40, w - 6)]
    assert any(shown.pixel(x, y) != hidden.pixel(x, y) for x, y in tag)


def test_pose_without_a_model_says_what_to_install_and_adds_nothing(setup, qtbot, monkeypatch):
    from canvasai.backends import preprocessors

    monkeypatch.setattr(preprocessors, "model_for", lambda *a, **k: None)  # none installed
    panel, doc = setup
    layer = doc.layers[1]
    doc.write_pixels(layer, 0, 0, np.full((16, 16, 4), 90, np.uint8))
    n = len(doc.layers)
    panel.preprocess_layer(layer, "pose")  # a model kind: always on the thread pool
    assert panel.preprocessing == 1
    qtbot.waitUntil(lambda: panel.preprocessing == 0, timeout=30000)
    assert len(doc.layers) == n and "pose-estimation model" in panel.role_note.text()
