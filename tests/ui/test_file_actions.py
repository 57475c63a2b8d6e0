"""FileController against a minimal stand-in for the MainWindow (offscreen, pytest-qt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMessageBox

from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.formats.ora import load_ora, save_ora
from canvasai.formats.recovery import RecoverySession, snapshot_document
from canvasai.ui.file_actions import FileController
from canvasai.ui.images import qimage_from_rgba, rgba_from_qimage
from tests.formats.files_helpers import flat, painted_document


class FakeWindow(QMainWindow):
    """The part of the MainWindow contract the controller uses."""

    def __init__(self) -> None:
        super().__init__()
        self.menu_file = self.menuBar().addMenu("&File")
        self.menu_edit = self.menuBar().addMenu("&Edit")
        self.document: Document | None = None
        self.compositor: Compositor | None = None
        self.document_path: str | None = None
        self.titles = 0
        self.files = FileController(self)

    def set_document(self, doc: Document | None, path: str | None = None) -> None:
        self.document = doc
        self.document_path = path
        self.compositor = Compositor(doc) if doc is not None else None

    def update_title(self) -> None:
        self.titles += 1


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CANVASAI_AUTOSAVE_S", "3600")
    w = FakeWindow()
    qtbot.addWidget(w)
    yield w
    w.files.runner.wait(10_000)


def _idle(qtbot, win) -> None:
    qtbot.waitUntil(lambda: not win.files.busy, timeout=10_000)


def test_actions_and_shortcuts(win):
    keys = {name: a.shortcut().toString() for name, a in win.files.actions.items()}
    assert (
        keys["open"] == "Ctrl+O" and keys["save"] == "Ctrl+S" and keys["save_as"] == "Ctrl+Shift+S"
    )
    assert (
        keys["export"] == "Ctrl+Shift+E" and keys["copy"] == "Ctrl+C" and keys["paste"] == "Ctrl+V"
    )
    assert {"export_layers", "export_selection"} <= set(keys)
    assert win.files.actions["open"] in win.menu_file.actions()
    assert win.files.actions["paste"] in win.menu_edit.actions()


def test_open_project_in_background(win, qtbot, tmp_path):
    doc = painted_document()
    path = tmp_path / "p.ora"
    save_ora(doc, path)
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        win.files.open_path(path)
    assert win.document_path == str(path)
    assert (flat(win.document) == flat(doc)).all()
    assert not win.files.needs_autosave()


def test_open_image_has_no_project_path(win, qtbot, tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (20, 10), (1, 2, 3)).save(path)
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        win.files.open_path(path)
    assert win.document_path is None and win.document.layers[0].name == "photo"


def test_hostile_file_is_refused_and_nothing_changes(win, qtbot, tmp_path):
    current = painted_document()
    win.set_document(current, "/somewhere/current.ora")
    before = flat(current)
    bad = tmp_path / "evil.ora"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with qtbot.waitSignal(win.files.error, timeout=10_000):
        win.files.open_path(bad)
    assert "evil.ora" in win.files.last_error and "zip" in win.files.last_error
    assert win.document is current and win.document_path == "/somewhere/current.ora"
    assert (flat(current) == before).all()
    assert bad.read_bytes() == b"PK\x03\x04 not really a zip"
    box = win.files.message_box
    assert box is not None and box.isVisible() and "evil.ora" in box.text()
    box.close()


def test_save_runs_off_thread_and_painting_continues(win, qtbot, tmp_path):
    doc = painted_document()
    win.set_document(doc)
    path = tmp_path / "saved.ora"
    assert not doc.history.is_clean
    snapshot_pixels = flat(doc)
    with qtbot.waitSignal(win.files.saved, timeout=10_000):
        assert win.files.save_in_background(str(path))
        # Painting after the snapshot goes to the live document only.
        doc.write_pixels(doc.layers[1], 0, 0, np.full((5, 5, 4), 9, np.uint8))
    assert (flat(load_ora(path)) == snapshot_pixels).all()
    assert win.document_path == str(path)
    assert not doc.history.is_clean  # changed during the save: still modified


def test_save_marks_clean_and_sync_save_waits(win, qtbot, tmp_path, monkeypatch):
    doc = painted_document()
    win.set_document(doc)
    monkeypatch.setattr(
        "PySide6.QtWidgets.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(tmp_path / "asked"), ""),
    )
    assert win.files.save() is True
    assert (tmp_path / "asked.ora").exists() and doc.history.is_clean
    assert win.document_path == str(tmp_path / "asked.ora") and win.titles >= 1


def test_save_failure_keeps_document_and_old_file(win, qtbot, tmp_path):
    doc = painted_document()
    win.set_document(doc)
    target = tmp_path / "nofolder" / "x.ora"
    with qtbot.waitSignal(win.files.error, timeout=10_000):
        win.files.save_in_background(str(target))
    assert "unchanged" in win.files.last_error and not doc.history.is_clean
    assert win.document is doc and not target.exists()
    win.files.message_box.close()


def test_export_flattened_and_layers(win, qtbot, tmp_path):
    doc = painted_document()
    doc.layers[2].generation = {"prompt": "sea", "seed": 1}
    win.set_document(doc)
    with qtbot.waitSignal(win.files.exported, timeout=10_000) as sig:
        win.files.export_to("flattened", str(tmp_path / "flat.webp"))
    assert sig.args[0][0].name == "flat.webp"
    with Image.open(tmp_path / "flat.webp") as img:
        assert img.size == (doc.width, doc.height)
    with qtbot.waitSignal(win.files.exported, timeout=10_000) as sig:
        win.files.export_to("layers", str(tmp_path / "layers"))
    assert len(sig.args[0]) == 3


def test_copy_and_paste_through_the_clipboard(win, qtbot):
    doc = painted_document()
    win.set_document(doc)
    doc.set_active(1)
    assert win.files.copy()
    copied = rgba_from_qimage(QGuiApplication.clipboard().image())
    layer = doc.layers[1]
    assert (copied == layer.surface.read(layer.surface.bounds())).all()
    n = len(doc.layers)
    assert win.files.paste()
    assert len(doc.layers) == n + 1 and doc.active_layer.name == "Pasted"
    assert doc.history.undo_text().startswith("Add layer")
    pasted = doc.active_layer.surface
    assert (pasted.read(pasted.bounds()) == copied).all()


def test_paste_without_document_makes_one(win):
    img = np.zeros((7, 9, 4), np.uint8)
    img[..., 3] = 255
    QGuiApplication.clipboard().setImage(qimage_from_rgba(img))
    assert win.files.paste()
    assert (win.document.width, win.document.height) == (9, 7)


def test_paste_file_urls_from_clipboard(win, qtbot, tmp_path):
    path = tmp_path / "u.png"
    Image.new("RGBA", (6, 6), (1, 2, 3, 255)).save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    QGuiApplication.clipboard().setMimeData(mime)
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        assert win.files.paste()


def test_drop_opens_then_adds_layers(win, qtbot, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGBA", (30, 20), (255, 0, 0, 255)).save(a)
    Image.new("RGB", (10, 10), (0, 0, 255)).save(b)
    win.files.handle_drop([str(a), str(b), str(tmp_path / "notes.txt")])
    qtbot.waitUntil(
        lambda: win.document is not None and len(win.document.layers) == 2, timeout=10_000
    )
    assert [la.name for la in win.document.layers] == ["a", "b"]
    assert win.document.layers[1].surface.bounds().x == 10  # centred


def test_autosave_only_when_changed_and_close_removes_it(win, qtbot):
    doc = Document(64, 64)
    win.set_document(doc)
    files = win.files
    assert not files.needs_autosave() or doc.history.revision == 0
    doc.write_pixels(doc.layers[1], 1, 1, np.full((4, 4, 4), 200, np.uint8))
    with qtbot.waitSignal(files.autosaved, timeout=10_000):
        assert files.autosave_now()
    assert files.recovery.exists()
    info = json.loads(files.recovery.info_path.read_text())
    assert info["revision"] == doc.history.revision and info["clean_exit"] is False
    assert not files.autosave_now()  # nothing changed since
    files.on_close()
    assert not files.recovery.exists()


def test_autosave_timer_fires(win, qtbot):
    doc = Document(32, 32)
    win.set_document(doc)
    doc.write_pixels(doc.layers[1], 0, 0, np.full((3, 3, 4), 50, np.uint8))
    win.files.set_autosave_interval(1)
    with qtbot.waitSignal(win.files.autosaved, timeout=5_000):
        pass


def test_recovery_is_offered_and_restores(win, qtbot, tmp_path):
    doc = painted_document()
    doc.metadata["generation_history"] = [{"prompt": "castle"}]
    crashed = RecoverySession(win.files.recovery.directory, "999-crashed")
    crashed.write(snapshot_document(doc), "/home/me/castle.ora", revision=7, title="castle.ora")
    info = json.loads(crashed.info_path.read_text())
    info["pid"] = 2**22 + 4321
    crashed.info_path.write_text(json.dumps(info))
    box = win.files.check_recovery()
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "castle.ora" in box.text() and crashed_time(info) in box.text()
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        box.findChild(type(box.defaultButton()), "restoreButton").click()
    restored = win.document
    assert (flat(restored) == flat(doc)).all()
    assert restored.metadata["generation_history"] == [{"prompt": "castle"}]
    assert win.document_path == "/home/me/castle.ora" and not restored.history.is_clean
    assert win.files.check_recovery() is None  # adopted: not offered twice
    assert win.files.recovery.exists() and not crashed.ora_path.exists()


def crashed_time(info: dict) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(info["saved_at"]).strftime("%H:%M")


def test_qimage_conversion_round_trip():
    px = np.random.default_rng(2).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    assert (rgba_from_qimage(qimage_from_rgba(px)) == px).all()


def test_export_dialog_options(qtbot):
    from canvasai.ui.export_dialog import ExportDialog

    dialog = ExportDialog("Export image")
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(dialog.format.findData("webp"))
    dialog.lossless.setChecked(True)
    dialog.scale.setValue(50)
    dialog.metadata.setChecked(False)
    opts = dialog.options()
    assert (opts.format, opts.lossless, opts.scale, opts.metadata) == ("webp", True, 0.5, False)
    assert dialog.lossless.isEnabled()


def test_export_menu_flow_asks_options_then_file(win, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QDialog

    from canvasai.ui import export_dialog

    win.set_document(painted_document())
    monkeypatch.setattr(
        export_dialog.ExportDialog,
        "exec",
        lambda self: (
            self.format.setCurrentIndex(self.format.findData("jpeg")),
            QDialog.DialogCode.Accepted,
        )[1],
    )
    monkeypatch.setattr(
        "PySide6.QtWidgets.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(tmp_path / "menu.jpg"), ""),
    )
    with qtbot.waitSignal(win.files.exported, timeout=10_000):
        win.files.export_dialog("flattened")
    with Image.open(tmp_path / "menu.jpg") as img:
        assert img.format == "JPEG"
    win.files.export_dialog("selection")  # no selection: told, nothing written
    assert "no selection" in win.files.last_error
    win.files.message_box.close()


def test_gui_thread_keeps_running_during_a_big_save(win, qtbot, tmp_path, monkeypatch):
    """The save waits, on its worker thread, for a GUI-thread timer: if saving blocked the
    GUI thread, the timer could never fire and the save never finish. (How long the GUI
    may pause is measured in benchmarks/editing.py, not asserted here.)"""
    import threading

    from PySide6.QtCore import QTimer

    from canvasai.ui import file_actions

    doc = Document(1024, 1024)
    layer = doc.add_layer("noise")
    doc.write_pixels(layer, 0, 0, np.random.default_rng(0).integers(
        0, 256, (1024, 1024, 4), dtype=np.uint8))
    win.set_document(doc)
    gate = threading.Event()
    threads: list[str] = []
    real_save = file_actions.save_ora

    def gated_save(snap, path, progress=None):
        threads.append(threading.current_thread().name)
        assert gate.wait(20), "the GUI thread did not run while saving"
        return real_save(snap, path, progress)

    monkeypatch.setattr(file_actions, "save_ora", gated_save)
    QTimer.singleShot(50, gate.set)
    with qtbot.waitSignal(win.files.saved, timeout=60_000):
        win.files.save_in_background(str(tmp_path / "big.ora"))
    assert threads and threads[0] != threading.main_thread().name
    assert (tmp_path / "big.ora").stat().st_size > 1024 * 1024


# -- last folder, recent files, close ------------------------------------------------------

def test_file_dialogs_start_in_the_last_folder_used(win, qtbot, tmp_path, monkeypatch):
    from canvasai.core import settings

    seen: list[str] = []
    pics = tmp_path / "pictures"
    pics.mkdir()
    save_ora(painted_document(), pics / "a.ora")

    def fake_open(_parent, _caption, start, _filter):
        seen.append(start)
        return str(pics / "a.ora"), ""

    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getOpenFileName", fake_open)
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        win.files.open_dialog()
    assert seen == [str(Path.home())]  # nothing used yet: home, not the launch folder
    assert settings.current().files.last_dir == str(pics)
    _idle(qtbot, win)

    def fake_save(_parent, _caption, start, _filter):
        seen.append(start)
        return "", ""

    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getSaveFileName", fake_save)
    win.document_path = None
    assert win.files.save_as_dialog() is False
    assert seen[-1] == str(pics / "Untitled.ora")
    win.files.open_dialog()
    assert seen[-1] == str(pics)
    _idle(qtbot, win)


def test_recent_files_list_opened_and_saved_files_and_prune_missing_ones(win, qtbot, tmp_path):
    from canvasai.core import settings

    a, b = tmp_path / "a.ora", tmp_path / "b.ora"
    save_ora(painted_document(), a)
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        win.files.open_path(a)
    _idle(qtbot, win)
    with qtbot.waitSignal(win.files.saved, timeout=10_000):
        win.files.save_in_background(str(b))
    assert list(settings.current().files.recent) == [str(b), str(a)]
    win.files.fill_recent_menu()
    texts = [act.text() for act in win.files.recent_menu.actions() if act.text()]
    assert texts[0].startswith("&1 b.ora") and texts[1].startswith("&2 a.ora")
    b.unlink()
    win.files.fill_recent_menu()
    texts = [act.text() for act in win.files.recent_menu.actions() if act.text()]
    assert texts[0].startswith("&1 a.ora") and list(settings.current().files.recent) == [str(a)]
    opened = [act for act in win.files.recent_menu.actions() if act.text().startswith("&1")][0]
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        opened.trigger()
    _idle(qtbot, win)
    clear = [act for act in win.files.recent_menu.actions() if act.text().startswith("Clear")][0]
    clear.trigger()
    win.files.fill_recent_menu()
    assert settings.current().files.recent == ()
    assert not win.files.recent_menu.actions()[0].isEnabled()  # "No recent files"


def test_close_leaves_no_document_and_no_recovery_file(win, qtbot):
    win.set_document(painted_document())
    win.files.autosave_now()
    _idle(qtbot, win)
    assert win.files.recovery.exists()
    assert win.files.actions["close"].shortcut().toString() == "Ctrl+W"
    win.files.actions["close"].trigger()
    assert win.document is None and not win.files.recovery.exists()


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (40_000, 40_000), (40_000, 2)])
def test_too_large_images_get_one_plain_message_with_the_real_limits(win, qtbot, tmp_path,
                                                                     width, height):
    import struct
    import zlib

    from canvasai.formats.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    path = tmp_path / "huge.png"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with qtbot.waitSignal(win.files.error, timeout=10_000):
        win.files.open_path(path)
    msg = win.files.last_error
    # the size it claims and the same two limits, whichever check caught it; no Pillow text
    assert f"{width:,} x {height:,} pixels" in msg
    assert f"at most {MAX_IMAGE_SIDE:,} pixels on a side" in msg
    assert f"{MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels in all" in msg
    assert "DOS attack" not in msg and "exceeds limit" not in msg
    status = win.statusBar().currentMessage()
    assert status.startswith("Could not open") and len(status) <= 90
    win.files.message_box.close()
