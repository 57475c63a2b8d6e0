"""Main window: menus and shortcuts trigger, tools switch, new-document validation, app start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from canvasai.document.document import Document
from canvasai.ui.main_window import MainWindow
from canvasai.ui.new_document_dialog import NewDocumentDialog

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.set_document(Document(300, 200))
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    w.canvas.setFocus()
    return w


def key(window, k, mods=Qt.KeyboardModifier.NoModifier):
    from PySide6.QtTest import QTest

    QTest.keyClick(window.canvas, k, mods)


def paint(w: MainWindow) -> None:
    w.document.write_pixels(w.document.active_layer, 5, 5, np.full((4, 4, 4), 255, np.uint8))


def test_menus_and_contract(window):
    assert [m.title().replace("&", "") for m in (window.menu_file, window.menu_edit,
            window.menu_select, window.menu_layer, window.menu_view)] == [
        "File", "Edit", "Select", "Layer", "View"]
    assert window.compositor is not None and window.compositor.doc is window.document
    assert window.document_path is None
    shortcuts = {name: [s.toString() for s in a.shortcuts()]
                 for name, a in window.actions_by_name.items()}
    assert shortcuts["new"] == ["Ctrl+N"]
    assert shortcuts["undo"] == ["Ctrl+Z"]
    assert shortcuts["redo"] == ["Ctrl+Shift+Z", "Ctrl+Y"]
    assert shortcuts["merge_down"] == ["Ctrl+E"]
    assert shortcuts["zoom_fit"] == ["Ctrl+0"]
    assert shortcuts["toggle_panels"] == ["Tab"]
    assert shortcuts["tool_brush"] == ["B"] and shortcuts["tool_eraser"] == ["E"]
    assert shortcuts["quit"] == ["Ctrl+Q"]
    assert "300 × 200" in window.size_label.text()


def test_undo_redo_shortcuts_and_title(window):
    paint(window)
    assert window.windowTitle() == "Untitled* — CanvasAI"
    key(window, Qt.Key.Key_Z, CTRL)
    assert window.document.history.entries == []
    assert window.windowTitle() == "Untitled — CanvasAI"
    key(window, Qt.Key.Key_Z, CTRL | SHIFT)
    assert window.document.history.entries == ["Edit pixels"]
    key(window, Qt.Key.Key_Z, CTRL)
    key(window, Qt.Key.Key_Y, CTRL)
    assert window.document.history.entries == ["Edit pixels"]
    window.set_document(Document(10, 10), "/tmp/picture.ora")
    assert window.windowTitle() == "picture.ora — CanvasAI"


@pytest.mark.parametrize("k, mods, tool", [
    (Qt.Key.Key_E, None, "eraser"), (Qt.Key.Key_M, None, "mask_brush"),
    (Qt.Key.Key_M, SHIFT, "mask_eraser"), (Qt.Key.Key_R, CTRL, "rect_select"),
    (Qt.Key.Key_L, None, "lasso_select"), (Qt.Key.Key_G, None, "fill"),
    (Qt.Key.Key_P, None, "picker"), (Qt.Key.Key_V, None, "move"),
])
def test_tool_shortcuts_switch_tool(window, k, mods, tool):
    key(window, k, mods or Qt.KeyboardModifier.NoModifier)
    assert window.current_tool_name == tool
    assert window.canvas.tool is window.tools[tool]
    assert window.tools_panel.buttons[tool].isChecked()
    key(window, Qt.Key.Key_B)
    assert window.current_tool_name == "brush"


def test_colour_swap_and_brush_size_keys(window):
    window.color_panel.set_foreground((10, 20, 30))
    key(window, Qt.Key.Key_X)
    assert window.color_panel.foreground == (255, 255, 255)
    assert window.tool_context.foreground == (255, 255, 255)
    assert window.tool_context.background == (10, 20, 30)
    size = window.brush.size
    key(window, Qt.Key.Key_BracketRight)
    assert window.brush.size > size
    assert window.tools_panel.size.value() == round(window.brush.size)
    key(window, Qt.Key.Key_BracketLeft)
    key(window, Qt.Key.Key_BracketLeft)
    assert window.brush.size < size


def test_zoom_shortcuts_and_tab_hides_panels(window):
    window.canvas.fit_to_view()
    fit = window.canvas.zoom
    window.canvas.set_zoom(8.0)
    key(window, Qt.Key.Key_0, CTRL)
    assert window.canvas.zoom == pytest.approx(fit)
    key(window, Qt.Key.Key_1, CTRL)
    assert window.canvas.zoom == 1.0
    key(window, Qt.Key.Key_Minus, CTRL)
    assert window.canvas.zoom < 1.0
    key(window, Qt.Key.Key_Tab)
    assert not any(d.isVisible() for d in window.docks.values())
    key(window, Qt.Key.Key_Tab)
    assert all(d.isVisible() for d in window.docks.values())


def test_select_menu_actions(window, monkeypatch):
    doc = window.document
    window.actions_by_name["select_all"].trigger()
    assert doc.selection is not None
    monkeypatch.setattr("canvasai.ui.main_window.ask_pixels", lambda *a, **k: 3)
    window.actions_by_name["select_none"].trigger()
    assert doc.selection is None
    window.actions_by_name["invert_selection"].trigger()  # nothing -> everything
    assert doc.selection is not None
    window.actions_by_name["shrink"].trigger()
    window.actions_by_name["selection_to_mask"].trigger()
    assert doc.mask.read(doc.rect)[1, 1, 0] == 0 and doc.mask.read(doc.rect)[100, 100, 0] == 255
    window.actions_by_name["clear_mask"].trigger()
    assert doc.mask.is_blank
    assert doc.history.entries[-3:] == ["Shrink selection 3px", "Mask from selection", "Clear mask"]


@pytest.mark.parametrize("width, height", [("0", "100"), ("-5", "100"), ("1000000", "100"),
                                           ("abc", "10")])
def test_new_document_dialog_rejects_bad_sizes_inline(qtbot, width, height):
    dlg = NewDocumentDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.width_edit.setText(width)
    dlg.height_edit.setText(height)
    dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dlg.isVisible() and dlg.result() == 0
    assert dlg.error.isVisible() and dlg.error.text()


def test_new_document_dialog_builds_document(qtbot):
    dlg = NewDocumentDialog()
    qtbot.addWidget(dlg)
    dlg.preset.setCurrentIndex(dlg.preset.findText("Square 512 × 512 (SD 1.5)"))
    assert (dlg.width_edit.text(), dlg.height_edit.text()) == ("512", "512")
    dlg.transparent.setChecked(True)
    dlg.accept()
    doc = dlg.create_document()
    assert (doc.width, doc.height) == (512, 512) and len(doc.layers) == 1


def test_window_new_document_invalid_size_leaves_document(window):
    original = window.document
    seen = {}

    def interact():
        dlg = QApplication.activeModalWidget()
        dlg.width_edit.setText("0")
        dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        seen["error"] = dlg.error.text()
        seen["open"] = dlg.isVisible()
        dlg.reject()

    QTimer.singleShot(0, interact)
    window.new_document()
    assert seen["open"] and "at least 1 x 1" in seen["error"]
    assert window.document is original

    def valid():
        dlg = QApplication.activeModalWidget()
        dlg.width_edit.setText("64")
        dlg.height_edit.setText("32")
        dlg.accept()

    QTimer.singleShot(0, valid)
    window.new_document()
    assert (window.document.width, window.document.height) == (64, 32)
    assert window.canvas.document is window.document
    assert window.layers_panel.list.count() == 2


def test_close_without_prompt_in_tests(window):
    paint(window)
    assert window.close()


def test_app_main_runs_test_script(tmp_path: Path):
    """`app.main()` shows the window, then runs CANVASAI_TEST_SCRIPT with window and app."""
    out = tmp_path / "out.txt"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        doc = window.document
        sys_mods = __import__("sys").modules
        with open({str(out)!r}, "w") as f:
            f.write(f"{{window.isVisible()}} {{doc.width}}x{{doc.height}} {{app.applicationName()}} "
                    f"{{'torch' in sys_mods}}")
        app.quit()
    """))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CANVASAI_NO_PROMPTS="1",
               CANVASAI_TEST_SCRIPT=str(script))
    proc = subprocess.run([sys.executable, "-c", "import canvasai.app as a; raise SystemExit(a.main([]))"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "True 1920x1080 CanvasAI False"


def test_app_main_opens_the_file_given(tmp_path: Path):
    from PIL import Image

    picture = tmp_path / "small.png"
    Image.new("RGBA", (7, 5), (10, 20, 30, 255)).save(picture)
    out = tmp_path / "out.txt"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import time
        end = time.time() + 20
        while window.document.width != 7 and time.time() < end:
            app.processEvents()
            time.sleep(0.01)
        with open({str(out)!r}, "w") as f:
            f.write(f"{{window.document.width}}x{{window.document.height}}")
        app.quit()
    """))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CANVASAI_NO_PROMPTS="1",
               CANVASAI_TEST_SCRIPT=str(script))
    code = f"import canvasai.app as a; raise SystemExit(a.main([{str(picture)!r}]))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "7x5"


def test_document_changed_and_panels_follow(window):
    seen = []
    window.document_changed.connect(seen.append)
    doc = Document(40, 30, background=None)
    window.set_document(doc)
    assert seen == [doc]
    assert window.canvas.document is doc and window.layers_panel.document is doc
    assert window.tool_context.doc is doc and window.current_tool.ctx.doc is doc
    assert window.history_panel.list.count() == 1  # "Original"


def test_picker_and_fill_tolerance_reach_tools(window):
    from canvasai.tools.base import PointerEvent

    doc = window.document
    doc.write_pixels(doc.active_layer, 0, 0, np.full((10, 10, 4), (12, 200, 34, 255), np.uint8))
    window.select_tool("picker")
    window.current_tool.press(PointerEvent(5, 5))
    window.current_tool.release(PointerEvent(5, 5))
    assert window.color_panel.foreground == (12, 200, 34)
    assert window.color_panel.hex_edit.text() == "#0cc822"
    window.tools_panel.tolerance.setValue(99)
    assert window.tool_context.fill_tolerance == 99
    window.tools_panel.size.setValue(77)
    assert window.brush.size == 77


def test_undo_during_a_stroke_cancels_it_first(window, qtbot):
    doc = window.document
    paint(window)
    c = window.canvas
    p0 = c.map_from_doc(150, 100).toPoint()
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    assert doc.active_layer.surface.read(doc.rect)[100, 150, 3] > 0  # dab is visible already
    key(window, Qt.Key.Key_Z, CTRL)
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    assert doc.history.entries == [] and doc.history.redo_entries == ["Edit pixels"]
    assert not doc.active_layer.surface.read(doc.rect)[..., 3].any()


def test_pen_eraser_end_erases_with_the_brush_selected(window):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QInputDevice, QPointingDevice, QTabletEvent

    doc = window.document
    layer = doc.active_layer
    doc.write_pixels(layer, 0, 0, np.full((200, 300, 4), 255, np.uint8))
    window.select_tool("brush")
    c = window.canvas
    dev = QPointingDevice("pen eraser", 43, QInputDevice.DeviceType.Stylus,
                          QPointingDevice.PointerType.Eraser,
                          QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)
    pos = QPointF(c.map_from_doc(150, 100))
    for kind, buttons in ((QEvent.Type.TabletPress, Qt.MouseButton.LeftButton),
                          (QEvent.Type.TabletRelease, Qt.MouseButton.NoButton)):
        ev = QTabletEvent(kind, dev, pos, c.mapToGlobal(pos), 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                          Qt.KeyboardModifier.NoModifier, Qt.MouseButton.LeftButton, buttons)
        QApplication.sendEvent(c, ev)
    assert layer.surface.read(doc.rect)[100, 150, 3] == 0
    assert doc.history.entries[-1] == "Eraser stroke"
    assert window.current_tool_name == "brush"


def test_tab_in_a_text_field_moves_focus_and_keeps_the_panels(window, qtbot):
    from PySide6.QtWidgets import QLineEdit

    field = window.color_panel.findChildren(QLineEdit)[0]  # the hex colour field
    window.activateWindow()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    action = window.actions_by_name["toggle_panels"]
    action.trigger()
    assert all(d.isVisible() for d in window.docks.values())
    assert not field.hasFocus()


# -- the mask after Accept, its shortcut and its tint -----------------------------------------

def _paint_mask(doc, cx, cy, r):
    from canvasai.document.stroke import Stroke

    s = Stroke(doc.mask, doc.rect)
    s.dab(cx, cy, r, 1.0)
    doc.push_tiles_command("mask", s.finish(), s.rect, "Mask")
    doc.mask_changed.emit(s.rect)


@pytest.mark.parametrize("clear", [True, False])
def test_accept_clears_the_mask_it_used_in_one_undo_step(qtbot, window, clear):
    from canvasai.app import _attach_generation
    from canvasai.core import settings

    if not clear:
        window.actions_by_name["clear_mask_on_accept"].setChecked(False)
    assert settings.current().ui.clear_mask_after_accept is clear
    _attach_generation(window)
    gen, doc = window.generation, window.document
    try:
        _paint_mask(doc, 150, 100, 12)
        gen.panel.set_flow("inpaint")
        qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(gen.strip.candidates) == 1, timeout=60_000)
        n_layers = len(doc.layers)
        qtbot.mouseClick(gen.strip.accept_button, Qt.MouseButton.LeftButton)
        assert len(doc.layers) == n_layers + 1
        assert doc.mask.is_blank is clear
        doc.undo()  # one step brings back the mask and removes the result
        assert len(doc.layers) == n_layers and not doc.mask.is_blank
    finally:
        gen.shutdown()


def test_clear_mask_has_a_shortcut_and_the_tint_can_be_hidden(qtbot, window):
    doc = window.document
    _paint_mask(doc, 50, 50, 10)
    key(window, Qt.Key.Key_X, CTRL | SHIFT)
    assert doc.mask.is_blank
    tint = window.actions_by_name["mask_tint"]
    assert tint.isChecked() and tint.shortcut().toString()
    tint.trigger()
    assert not tint.isChecked()


def test_every_file_the_style_sheet_names_exists():
    import re

    from canvasai.ui.icons import stylesheet

    urls = re.findall(r"url\(([^)]+)\)", stylesheet())
    assert urls and all(Path(u).is_file() for u in urls), urls


def test_window_size_and_dock_layout_come_back_at_the_next_start(qtbot):
    from canvasai.app import _attach_generation
    from canvasai.core import settings

    w = MainWindow()
    qtbot.addWidget(w)
    _attach_generation(w)
    w.set_document(Document(64, 64))
    w.show()
    qtbot.waitExposed(w)
    first = (w.width(), w.height())
    w.resize(w.width() - 40, w.height() - 30)
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, w.docks["layers"])  # moved
    w.docks["history"].hide()  # closed
    qtbot.wait(50)
    size = (w.width(), w.height())
    assert size != first
    w.close()
    w.generation.shutdown()
    assert settings.current().ui.window_geometry and settings.current().ui.window_state

    w2 = MainWindow()
    qtbot.addWidget(w2)
    _attach_generation(w2)
    w2.set_document(Document(64, 64))
    w2.show()
    qtbot.waitExposed(w2)
    qtbot.waitUntil(lambda: w2.dockWidgetArea(w2.docks["layers"])
                    == Qt.DockWidgetArea.LeftDockWidgetArea)
    assert w2.docks["history"].isHidden()
    assert (w2.width(), w2.height()) == size
    w2.generation.shutdown()


def test_close_document_then_new_one(qtbot, window):
    window.files.actions["close"].trigger()
    assert window.document is None and window.windowTitle() == "CanvasAI"
    key(window, Qt.Key.Key_X, CTRL | SHIFT)  # document actions do nothing without one
    window.set_document(Document(40, 30))
    assert window.document.width == 40


def test_brush_and_colours_come_back_at_the_next_launch(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.brush.size, w.brush.hardness, w.brush.opacity = 57.0, 0.35, 0.6
    w.color_panel.set_foreground((200, 10, 30))
    w.color_panel.set_background((1, 2, 3))
    w.save_layout()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    assert (w2.brush.size, w2.brush.hardness, w2.brush.opacity) == (57.0, 0.35, 0.6)
    assert w2.color_panel.foreground == (200, 10, 30) and w2.color_panel.background == (1, 2, 3)
    assert w2.tools_panel.size.value() == 57 and w2.tools_panel.hardness.value() == 35
