"""Several open documents in tabs, through the real MainWindow (pytest-qt, offscreen):
each tab keeps its own undo, results (and the one selected, drawn again when the tab
shows), jobs, view and frame; Open and a drop add tabs (a file open already is switched to;
Shift+drop adds layers); Save As onto a file open in another tab closes that tab (asking
when it has unsaved changes); closing a modified tab asks; Ctrl+W, Ctrl+Tab."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QTabBar

from canvasai.core import settings
from canvasai.document.document import Document
from canvasai.formats.ora import save_ora
from canvasai.generation import results
from canvasai.ui import main_window as mw
from canvasai.ui.main_window import MainWindow
from tests.formats.files_helpers import painted_document
from tests.ui.test_generation_flows import TIMEOUT_MS, paint_mask

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
Button = QMessageBox.StandardButton


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CANVASAI_AUTOSAVE_S", "3600")
    w = MainWindow()
    qtbot.addWidget(w)
    w.set_document(Document(120, 90))  # the blank document a start shows
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    w.canvas.setFocus()
    yield w
    w.files.runner.wait(10_000)


@pytest.fixture
def gen_win(win):
    from canvasai.app import _attach_generation

    _attach_generation(win)  # as the app wires it
    yield win
    win.generation.shutdown()


def two_files(tmp_path):
    a, b = tmp_path / "a.ora", tmp_path / "b.ora"
    save_ora(painted_document(160, 120, seed=1), a)
    save_ora(painted_document(90, 70, seed=2), b)
    return a, b


def open_file(qtbot, win, path) -> None:
    with qtbot.waitSignal(win.files.opened, timeout=10_000):
        win.files.open_path(path)
    qtbot.waitUntil(lambda: not win.files.busy, timeout=10_000)


def paint(doc: Document, value: int = 255) -> None:
    doc.write_pixels(doc.active_layer, 3, 3, np.full((4, 4, 4), value, np.uint8))


def noise_with_mask(doc: Document, seed: int, radius: int) -> None:
    """Opaque noise over the 120 x 90 document and a round mask in its middle."""
    px = np.random.default_rng(seed).integers(0, 255, (90, 120, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc.write_pixels(doc.active_layer, 0, 0, px)
    paint_mask(doc, 60, 45, radius)


def key(win, k, mods=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(win.canvas, k, mods)


def test_open_two_files_gives_two_tabs_each_with_its_own_undo(qtbot, win, tmp_path):
    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)  # takes the blank start document's place
    open_file(qtbot, win, b)
    bar = win.tab_bar
    assert bar.count() == 2 and len(win.documents) == 2 and bar.isVisible()
    assert [bar.tabText(i) for i in range(2)] == ["a.ora", "b.ora"]
    assert str(a) in bar.tabToolTip(0) and str(b) in bar.tabToolTip(1)
    assert bar.currentIndex() == 1 and win.document_path == str(b)
    assert win.windowTitle() == "b.ora — CanvasAI"
    doc_a, doc_b = (r.document for r in win.documents)
    assert win.document is doc_b and (doc_b.width, doc_b.height) == (90, 70)
    assert win.canvas.document is doc_b and win.layers_panel.document is doc_b

    # paint in B, switch to A by clicking its tab, paint there
    paint(doc_b)
    assert bar.tabText(1) == "b.ora •" and win.windowTitle() == "b.ora* — CanvasAI"
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tab_center(0))
    assert win.document is doc_a and win.canvas.document is doc_a
    assert win.layers_panel.document is doc_a and win.tool_context.doc is doc_a
    assert win.history_panel._history is doc_a.history
    paint(doc_a, 10)
    paint(doc_a, 20)
    assert bar.tabText(0) == "a.ora •"

    # Ctrl+Tab to B, Ctrl+Z there: A's history stays as it is
    key(win, Qt.Key.Key_Tab, CTRL)
    assert win.document is doc_b
    key(win, Qt.Key.Key_Z, CTRL)
    assert doc_b.history.entries == [] and bar.tabText(1) == "b.ora"
    assert doc_a.history.entries == ["Edit pixels", "Edit pixels"]
    assert win.undo_action.text() == "&Undo" and not win.undo_action.isEnabled()
    key(win, Qt.Key.Key_Backtab, CTRL | SHIFT)  # Ctrl+Shift+Tab: back to A
    assert win.document is doc_a and win.undo_action.isEnabled()
    key(win, Qt.Key.Key_Z, CTRL)
    assert doc_a.history.entries == ["Edit pixels"] and doc_b.history.entries == []
    # recent files list both
    assert list(settings.current().files.recent)[:2] == [str(b), str(a)]


def test_opening_a_file_that_is_open_switches_to_its_tab(qtbot, win, tmp_path):
    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    doc_a = win.documents[0].document
    paint(doc_a)  # its unsaved changes must not be replaced by the file on disk
    win.files.open_path(str(tmp_path / "." / "a.ora"))  # the same file, spelt differently
    assert not win.files.busy  # nothing is read
    assert win.tab_bar.count() == 2 and win.current_index == 0 and win.document is doc_a
    assert doc_a.history.entries == ["Edit pixels"]
    assert "open already" in win.statusBar().currentMessage()


def test_new_adds_a_tab_and_ctrl_w_closes_the_current_one(qtbot, win, monkeypatch):
    first = win.document  # blank: New still opens beside it (only Open takes its place)
    monkeypatch.setattr(mw.NewDocumentDialog, "exec", lambda self: 1)
    win.actions_by_name["new"].trigger()
    assert win.tab_bar.count() == 2 and win.document is not first
    assert [win.tab_bar.tabText(i) for i in range(2)] == ["Untitled", "Untitled 2"]
    second = win.document
    key(win, Qt.Key.Key_W, CTRL)  # prompts are off in tests: closes without asking
    assert win.tab_bar.count() == 1 and win.document is first and second not in [
        r.document for r in win.documents]
    assert win.canvas.document is first and win.layers_panel.document is first
    key(win, Qt.Key.Key_W, CTRL)
    assert win.document is None and win.tab_bar.isHidden() and win.windowTitle() == "CanvasAI"
    assert win.canvas.document is None and win.layers_panel.document is None


def test_closing_a_modified_tab_asks_save_discard_or_cancel(qtbot, win, tmp_path, monkeypatch):
    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    doc_a, doc_b = (r.document for r in win.documents)
    paint(doc_a)
    monkeypatch.setattr(mw, "prompts_enabled", lambda: True)
    asked: list[tuple[str, str]] = []
    answer = [Button.Cancel]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, text, *rest: asked.append((title, text)) or answer[0]))

    # the close button of A's tab (B shows): A is shown while asking; Cancel keeps it
    close_a = win.tab_bar.tabButton(0, QTabBar.ButtonPosition.RightSide)
    assert close_a is not None and close_a.isVisible()
    close_a.click()
    assert asked == [("Save changes to “a.ora”? — CanvasAI", "“a.ora” has unsaved changes.")]
    assert win.tab_bar.count() == 2 and win.document is doc_a

    # an unmodified tab closes without asking (middle-click)
    bar = win.tab_bar
    QTest.mouseClick(bar, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier,
                     bar.tab_center(1))
    assert len(asked) == 1 and [r.document for r in win.documents] == [doc_a]

    # Save: the file is written, then the tab closes
    answer[0] = Button.Save
    assert win.close_tab(0)
    assert len(asked) == 2 and win.document is None
    from canvasai.formats.ora import load_ora

    assert len(load_ora(a).layers) == len(doc_a.layers) and doc_b is not None


def test_closing_the_window_asks_for_each_modified_document(qtbot, win, tmp_path, monkeypatch):
    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    paint(win.documents[0].document)
    paint(win.documents[1].document)
    monkeypatch.setattr(mw, "prompts_enabled", lambda: True)
    asked: list[str] = []
    answer = [Button.Discard, Button.Cancel]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, *rest: asked.append(title) or answer[len(asked) - 1]))
    assert not win.close()  # Discard for a.ora, Cancel for b.ora: the window stays
    assert [t.split("”")[0] for t in asked] == ["Save changes to “a.ora", "Save changes to “b.ora"]
    assert win.isVisible() and win.tab_bar.count() == 2
    monkeypatch.setattr(mw, "prompts_enabled", lambda: False)


def test_a_job_of_one_document_lands_in_it_while_another_is_shown(qtbot, gen_win, tmp_path):
    win, gen = gen_win, gen_win.generation
    doc_a = win.document
    noise_with_mask(doc_a, seed=3, radius=8)
    gen.frame.set(0, 0, 16, 0)  # A's outpaint frame (kept with A)
    win.add_document(Document(64, 48))
    doc_b = win.document
    assert win.tab_bar.count() == 2 and not any(gen.frame.margins)  # B has none
    win.switch_to(0)
    assert gen.frame.margins == (0, 0, 16, 0)
    gen.frame.clear()

    gen.panel.set_flow("inpaint")
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    assert gen.busy and gen.has_jobs(doc_a)
    qtbot.mouseClick(win.tab_bar, Qt.MouseButton.LeftButton, pos=win.tab_bar.tab_center(1))
    assert win.document is doc_b and gen.busy  # the job finishes while B is shown
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert len(results.entries(doc_a)) == 1, gen.panel.message.text()
    assert results.entries(doc_b) == [] and gen.strip.candidates == []
    assert win.canvas._preview is None  # nothing of A's drawn over B
    assert win.tab_bar.tabText(0) == "Untitled •"  # A has something new
    assert gen.panel.step_label.text() == "Done: 1 in another tab"
    assert "1 new result kept with “Untitled”" in gen.panel.message.text()
    win.switch_to(0)
    assert len(gen.strip.candidates) == 1
    assert gen.accept(0) and doc_a.layers[-1].generation["flow"] == "inpaint"
    assert len(doc_b.layers) == 2


def test_closing_a_tab_cancels_its_jobs_only(qtbot, gen_win, monkeypatch):
    import threading
    import time

    from canvasai.generation import service as service_module

    gate = threading.Event()  # jobs wait here (cancellable) until the tab is closed
    real_execute = service_module.execute_job

    def held_execute(request, ctx, get_backend):
        while not gate.is_set():
            ctx.check_cancelled()
            time.sleep(0.002)
        return real_execute(request, ctx, get_backend)

    monkeypatch.setattr(service_module, "execute_job", held_execute)
    win, gen = gen_win, gen_win.generation
    doc_a = win.document
    paint(doc_a)
    paint_mask(doc_a, 60, 45, 8)
    gen.panel.set_flow("inpaint")
    win.add_document(Document(64, 48))
    doc_b = win.document
    paint_mask(doc_b, 30, 20, 6)
    gen.generate()  # B's job
    win.switch_to(0)
    gen.generate()  # A's job, queued after B's
    try:
        # jobs are queued in the order pressed, once planned (none can end before the gate)
        qtbot.waitUntil(lambda: doc_a in gen._job_doc.values(), timeout=TIMEOUT_MS)
        jobs = {d: j for j, d in gen._job_doc.items()}
        assert set(jobs) == {doc_a, doc_b}
        cancelled = []
        real_cancel = gen.service.cancel
        monkeypatch.setattr(gen.service, "cancel",
                            lambda j: cancelled.append(j) or real_cancel(j))
        win.close_tab(0)
        assert cancelled == [jobs[doc_a]]
        assert win.document is doc_b
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert win.tab_bar.count() == 1 and len(results.entries(doc_b)) == 1


def test_each_tab_keeps_its_view_and_a_hidden_one_its_cache_dropped(qtbot, win):
    first = win.documents[0]
    paint(first.document)
    win.canvas.set_zoom(2.0)
    offset = win.canvas.view.offset
    qtbot.wait(20)
    win.add_document(Document(400, 300))
    assert win.canvas.zoom != 2.0  # a new document is fitted
    assert first.compositor is not None and not first.compositor._cache.tiles
    win.switch_to(0)
    assert win.canvas.zoom == 2.0 and win.canvas.view.offset == offset
    assert "200 %" in win.zoom_label.text()
    assert win.compositor is first.compositor  # the same one (no new connections each switch)


def test_every_open_document_autosaves_to_its_own_recovery_file(qtbot, win, tmp_path):
    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    doc_a, doc_b = (r.document for r in win.documents)
    paint(doc_a)
    paint(doc_b)
    files = win.files
    assert files.needs_autosave(doc_a) and files.needs_autosave(doc_b)
    with qtbot.waitSignal(files.autosaved, timeout=10_000):
        assert files.autosave_now()
    qtbot.waitUntil(lambda: not files.busy, timeout=10_000)
    rec_a, rec_b = files._files_of(doc_a).recovery, files._files_of(doc_b).recovery
    assert rec_a.exists() and rec_b.exists() and rec_a.ora_path != rec_b.ora_path
    assert files.recovery is rec_b  # the shown document's
    assert not files.autosave_now()  # nothing changed since
    win.close_tab(0)  # closed on purpose: its recovery file goes, B's stays
    assert not rec_a.exists() and rec_b.exists()
    files.on_close()
    assert not rec_b.exists()


def test_tab_drag_reorders_the_documents(qtbot, win):
    paint(win.document)
    first = win.document
    win.add_document(Document(50, 40))
    second = win.document
    win.tab_bar.moveTab(1, 0)
    assert [r.document for r in win.documents] == [second, first]
    assert win.document is second and win.current_index == 0
    win.tab_bar.setCurrentIndex(1)
    assert win.document is first


def test_middle_click_outside_any_tab_does_nothing(qtbot, win):
    bar = win.tab_bar
    QTest.mouseClick(bar, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(bar.width() - 2, bar.height() // 2))
    assert bar.count() == 1 and win.document is not None


def test_every_crashed_document_is_offered_and_restored_into_its_own_tab(qtbot, win):
    import json

    from canvasai.formats.recovery import RecoverySession, snapshot_document

    for i, name in enumerate(("castle.ora", "river.ora")):
        crashed = RecoverySession(win.files.recovery.directory, f"99{i}-crashed")
        doc = painted_document(60 + 10 * i, 40, seed=i)
        crashed.write(snapshot_document(doc), f"/home/me/{name}", revision=3, title=name)
        info = json.loads(crashed.info_path.read_text())
        info["pid"] = 2**22 + 4321 + i
        crashed.info_path.write_text(json.dumps(info))
    win.files.check_recovery()
    for _ in range(2):  # the second is offered once the first is restored
        qtbot.waitUntil(lambda: win.files.message_box is not None
                        and win.files.message_box.isVisible(), timeout=10_000)
        box = win.files.message_box
        with qtbot.waitSignal(win.files.opened, timeout=10_000):
            box.findChild(type(box.defaultButton()), "restoreButton").click()
        qtbot.waitUntil(lambda: not win.files.busy, timeout=10_000)
    names = sorted(r.name for r in win.documents)
    assert names == ["castle.ora", "river.ora"]  # the blank start document gave its tab up
    assert all(r.modified for r in win.documents)
    assert win.files.check_recovery() is None


def test_each_image_tab_shows_its_own_content_credentials_again(qtbot, win, tmp_path):
    from PIL import Image

    from canvasai.ui.credentials_panel import install_credentials_panel

    panel = getattr(win, "credentials_panel", None) or install_credentials_panel(win)
    photo = tmp_path / "portrait_of_a_lighthouse_keeper_at_dusk_final_v2.png"
    Image.new("RGBA", (12, 8), (1, 2, 3, 255)).save(photo)
    open_file(qtbot, win, photo)
    assert "no Content Credentials" in panel.state_label.text()
    assert panel.minimumSizeHint().width() < 200  # a long name wraps, the dock stays narrow
    paint(win.document)
    win.add_document(Document(20, 20))
    assert "No image" in panel.state_label.text()
    win.switch_to(0)
    assert "no Content Credentials" in panel.state_label.text()
    assert "lighthouse" in panel.state_label.text()


def test_many_tabs_keep_readable_names_and_long_ones_are_cut_in_the_middle(qtbot, win):
    from canvasai.ui.document_tabs import MAX_TAB_CHARS, short_name

    long_name = "portrait_of_a_lighthouse_keeper_at_dusk_final_v2.ora"
    cut = short_name(long_name)
    assert len(cut) == MAX_TAB_CHARS and cut.startswith("portrait_") and cut.endswith("v2.ora")
    win.set_path_of(win.document, f"/pictures/{long_name}")
    for _ in range(12):
        win.add_document(Document(30, 20), replace_blank=False)
    bar = win.tab_bar
    assert bar.tabText(0) == cut and long_name in bar.tabToolTip(0)
    assert bar.tabText(5) == "Untitled 5" and bar.tabText(12) == "Untitled 12"
    assert bar.elideMode() == Qt.TextElideMode.ElideNone  # they scroll, never "U…5"


def test_a_tabs_menu_closes_the_others_and_copies_its_path(qtbot, win, tmp_path):
    from PySide6.QtWidgets import QApplication

    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    win.add_document(Document(30, 20), replace_blank=False)
    menu = win.tab_menu(1)
    actions = {act.text(): act for act in menu.actions()}
    assert set(actions) == {"Close", "Close other tabs", "Copy file path"}
    actions["Copy file path"].trigger()
    assert QApplication.clipboard().text() == str(b)
    actions["Close other tabs"].trigger()
    assert [r.path for r in win.documents] == [str(b)] and win.document_path == str(b)
    assert not win.tab_menu(0).actions()[1].isEnabled()  # no others left


def test_rerun_repeats_the_shown_documents_own_last_job(qtbot, gen_win, monkeypatch):
    win, gen = gen_win, gen_win.generation
    doc_a = win.document
    paint(doc_a)
    paint_mask(doc_a, 60, 45, 8)
    gen.panel.set_flow("inpaint")
    submitted = []
    real_submit = gen.service.submit_job

    def submit(request):  # record each request as it runs (seed chosen)
        job_id, ran = real_submit(request)
        submitted.append(ran)
        return job_id, ran

    monkeypatch.setattr(gen.service, "submit_job", submit)
    gen.generate()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    win.add_document(Document(64, 48))
    doc_b = win.document
    gen.rerun(same_seed=True)
    assert len(submitted) == 1  # B ran nothing yet: Re-run does not repeat A's job in B
    assert not gen.has_jobs(doc_b)
    win.switch_to(0)
    gen.rerun(same_seed=True)
    assert gen.has_jobs(doc_a)
    qtbot.waitUntil(lambda: len(submitted) == 2, timeout=TIMEOUT_MS)
    assert submitted[1].seed == submitted[0].seed and submitted[1].task == submitted[0].task
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)


def preview_bytes(win) -> tuple[bytes, object] | None:
    """What the canvas draws over the image: the preview's pixels and its rectangle."""
    shown = win.canvas._preview
    if shown is None:
        return None
    image, rect = shown
    return bytes(image.constBits()), rect


def test_switching_back_draws_the_result_selected_in_that_tab_again(qtbot, gen_win):
    win, gen = gen_win, gen_win.generation
    doc_a = win.document
    noise_with_mask(doc_a, seed=5, radius=10)
    win.add_document(Document(64, 48))  # B: no results
    bar = win.tab_bar
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tab_center(0))
    assert win.document is doc_a
    gen.panel.set_flow("inpaint")
    gen.panel.batch.setValue(2)
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert len(gen.strip.candidates) == 2, gen.panel.message.text()
    assert gen.strip.current_index() == 0 and preview_bytes(win) is not None
    qtbot.mouseClick(gen.strip.next_button, Qt.MouseButton.LeftButton)  # the second result
    assert gen.strip.current_index() == 1
    second = preview_bytes(win)
    assert second is not None

    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tab_center(1))
    assert win.document is not doc_a and gen.strip.candidates == []
    assert preview_bytes(win) is None  # nothing of A's over B
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tab_center(0))
    assert win.document is doc_a and len(gen.strip.candidates) == 2
    assert gen.strip.current_index() == 1 and gen.strip.position.text() == "2 of 2"
    assert preview_bytes(win) == second  # drawn again, the one that was selected
    assert gen.strip.accept_button.isEnabled()

    # Ctrl+Tab away and back: the same; after Discard of it, the tab shows none again
    key(win, Qt.Key.Key_Tab, CTRL)
    key(win, Qt.Key.Key_Tab, CTRL)
    assert win.document is doc_a and preview_bytes(win) == second
    qtbot.mouseClick(gen.strip.discard_button, Qt.MouseButton.LeftButton)
    assert len(gen.strip.candidates) == 1
    shown = preview_bytes(win)
    key(win, Qt.Key.Key_Tab, CTRL)
    key(win, Qt.Key.Key_Tab, CTRL)
    assert gen.strip.current_index() == 0 and preview_bytes(win) == shown
    gen.strip.list.setCurrentRow(-1)  # nothing selected: nothing drawn when it comes back
    gen.canvas.set_preview(None)
    key(win, Qt.Key.Key_Tab, CTRL)
    key(win, Qt.Key.Key_Tab, CTRL)
    assert gen.strip.current_index() == -1 and preview_bytes(win) is None


def drop(win, paths, mods=Qt.KeyboardModifier.NoModifier):
    """Drag `paths` over the window and drop them, as a file manager does."""
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = win.canvas.mapTo(win, win.canvas.rect().center())
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    enter = QDragEnterEvent(pos, actions, mime, Qt.MouseButton.LeftButton, mods)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    event = QDropEvent(QPointF(pos), actions, mime, Qt.MouseButton.LeftButton, mods)
    QApplication.sendEvent(win, event)
    assert event.isAccepted() and event.dropAction() == Qt.DropAction.CopyAction
    return event


def test_dropped_files_open_in_tabs_and_shift_drop_adds_layers(qtbot, win, tmp_path):
    from PIL import Image

    a, b = two_files(tmp_path)
    photo = tmp_path / "photo.png"
    Image.new("RGBA", (40, 30), (200, 10, 10, 255)).save(photo)
    first = win.document
    paint(first)  # touched: it keeps its tab
    layers = len(first.layers)

    drop(win, [a, photo, tmp_path / "notes.txt"])
    assert "Shift" in win.statusBar().currentMessage()  # how to get layers instead
    qtbot.waitUntil(lambda: win.tab_bar.count() == 3, timeout=10_000)
    qtbot.waitUntil(lambda: not win.files.busy, timeout=10_000)
    assert len(first.layers) == layers  # nothing was added to the shown document
    assert win.documents[1].path == str(a) and win.tab_bar.tabText(1) == "a.ora"
    opened = win.documents[2].document
    assert win.document is opened and (opened.width, opened.height) == (40, 30)

    drop(win, [a])  # open already: its tab shows, no second one
    assert win.tab_bar.count() == 3 and win.current_index == 1 and not win.files.busy
    assert "open already" in win.statusBar().currentMessage()

    win.switch_to(0)
    drop(win, [photo, b], Qt.KeyboardModifier.ShiftModifier)  # Shift: layers of this one
    qtbot.waitUntil(lambda: len(first.layers) == layers + 2, timeout=10_000)
    assert [la.name for la in first.layers[-2:]] == ["photo", "b"]
    assert win.tab_bar.count() == 3 and win.document is first

    # Edit ▸ Paste of copied files keeps adding them as layers (its name says so)
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QGuiApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    QGuiApplication.clipboard().setMimeData(mime)
    win.files.actions["paste"].trigger()
    qtbot.waitUntil(lambda: len(first.layers) == layers + 3, timeout=10_000)
    assert win.tab_bar.count() == 3


def save_as(qtbot, win, monkeypatch, path) -> None:
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getSaveFileName",
                        lambda *args, **kwargs: (str(path), ""))
    win.files.actions["save_as"].trigger()


def test_save_as_onto_a_file_open_in_another_tab_never_leaves_two_tabs_of_it(
        qtbot, win, tmp_path, monkeypatch):
    from canvasai.formats.ora import load_ora

    a, b = two_files(tmp_path)
    open_file(qtbot, win, a)
    open_file(qtbot, win, b)
    doc_a, doc_b = (r.document for r in win.documents)
    paint(doc_a)

    # A has unsaved changes and prompts are off: refused, A and its file stay as they are
    save_as(qtbot, win, monkeypatch, a)
    assert "“a.ora” is open in another tab with unsaved changes" in win.files.last_error
    assert win.tab_bar.count() == 2 and win.document is doc_b
    assert win.documents[0].document is doc_a and win.document_path == str(b)
    assert not win.files.busy and load_ora(a).width == 160
    win.files.message_box.close()

    # with prompts on, the question names the tab; Cancel keeps everything
    monkeypatch.setattr(mw, "prompts_enabled", lambda: True)
    asked: list[tuple[str, str]] = []
    answer = [Button.Cancel]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, text, *rest: asked.append((title, text)) or answer[0]))
    save_as(qtbot, win, monkeypatch, a)
    assert len(asked) == 1 and asked[0][0] == "Replace “a.ora”?"
    assert "“a.ora” is open in another tab with unsaved changes" in asked[0][1]
    assert win.tab_bar.count() == 2 and not win.files.busy
    assert "Not saved" in win.statusBar().currentMessage()

    # Yes: A's tab closes, B is saved as a.ora, one tab for it
    answer[0] = Button.Yes
    with qtbot.waitSignal(win.files.saved, timeout=10_000):
        save_as(qtbot, win, monkeypatch, a)
    assert [r.document for r in win.documents] == [doc_b]
    assert win.document_path == str(a) and win.tab_bar.tabText(0) == "a.ora"
    assert win.index_of_path(a) == 0 and load_ora(a).width == 90
    monkeypatch.setattr(mw, "prompts_enabled", lambda: False)

    # an unchanged tab of the file closes without a question (the file dialog asked
    # about replacing the file): Save As of a new document onto b.ora
    open_file(qtbot, win, b)
    assert win.tab_bar.count() == 2
    win.add_document(Document(30, 20), replace_blank=False)
    new = win.document
    with qtbot.waitSignal(win.files.saved, timeout=10_000):
        save_as(qtbot, win, monkeypatch, b)
    assert len(asked) == 2  # not asked again
    assert [r.document for r in win.documents][-1] is new and win.tab_bar.count() == 2
    assert [r.path for r in win.documents] == [str(a), str(b)]
    assert load_ora(b).width == 30


def test_save_as_onto_a_file_being_opened_is_refused(qtbot, win, tmp_path, monkeypatch):
    a, _b = two_files(tmp_path)
    paint(win.document)
    mine = win.document
    win.files.open_path(a)  # read in the background: no tab for it yet
    save_as(qtbot, win, monkeypatch, a)
    assert "“a.ora” is being opened" in win.files.last_error
    win.files.message_box.close()
    qtbot.waitUntil(lambda: not win.files.busy, timeout=10_000)
    assert [r.path for r in win.documents] == [None, str(a)]
    assert win.documents[0].document is mine and not mine.history.is_clean


def test_an_autosave_during_a_pending_transform_keeps_the_lifted_pixels(qtbot, win):
    """The piece a pending transform lifted is not applied yet: the recovery file holds the
    layer as it was before the lift, never the layer with its hole."""
    from canvasai.formats.ora import load_ora

    doc = win.document
    px = np.zeros((30, 40, 4), np.uint8)
    px[...] = (200, 30, 30, 255)
    doc.write_pixels(doc.active_layer, 20, 20, px)
    before = doc.active_layer.surface.read(doc.rect)
    win.select_tool("transform")
    tool = win.canvas._transform_tool()
    assert tool is not None and tool.begin() and tool.pending
    assert not doc.active_layer.surface.read(doc.rect).any()  # lifted: a hole now
    files = win.files
    with qtbot.waitSignal(files.autosaved, timeout=10_000):
        assert files.autosave_now()
    qtbot.waitUntil(lambda: not files.busy, timeout=10_000)
    saved = load_ora(files._files_of(doc).recovery.ora_path)
    assert np.array_equal(saved.layers[doc.active_index].surface.read(doc.rect), before)
    assert tool.pending  # the autosave did not apply or drop the transform
