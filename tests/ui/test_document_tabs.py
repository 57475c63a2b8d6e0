"""Several open documents in tabs, through the real MainWindow (pytest-qt, offscreen):
each tab keeps its own undo, results, jobs, view and frame; Open adds a tab (a file open
already is switched to); closing a modified tab asks; Ctrl+W, Ctrl+Tab."""

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
    px = np.random.default_rng(3).integers(0, 255, (90, 120, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc_a.write_pixels(doc_a.active_layer, 0, 0, px)
    paint_mask(doc_a, 60, 45, 8)
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
    # jobs are queued in the order pressed, once planned (B's may have ended by then)
    qtbot.waitUntil(lambda: doc_a in gen._job_doc.values(), timeout=TIMEOUT_MS)
    jobs = {d: j for j, d in gen._job_doc.items()}
    cancelled = []
    real_cancel = gen.service.cancel
    monkeypatch.setattr(gen.service, "cancel", lambda j: cancelled.append(j) or real_cancel(j))
    win.close_tab(0)
    assert cancelled == [jobs[doc_a]]
    assert win.document is doc_b
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
