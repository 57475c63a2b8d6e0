"""The Results strip: results stay (across jobs, in the saved project), prev/next,
hold-to-compare, "New seed" with the batch size, and the step counter."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.generation import results
from canvasai.ui.generation_controller import shown_steps
from tests.ui.test_generation_flows import (
    TIMEOUT_MS,
    generation_window,
    noise_into,
    paint_mask,
    press_generate,
)


@pytest.fixture
def win(qtbot):
    w = generation_window(qtbot, noise_into(Document(128, 96), seed=1))
    w.show()
    yield w
    w.generation.shutdown()


def test_a_second_job_keeps_the_first_jobs_candidates_and_prev_next_browse(qtbot, win):
    gen, doc = win.generation, win.document
    paint_mask(doc, 40, 40, 8)
    press_generate(qtbot, gen)
    first = gen.strip.candidates[0]
    paint_mask(doc, 90, 60, 8)
    press_generate(qtbot, gen)
    strip = gen.strip
    assert len(strip.candidates) == 2 and strip.candidates[0] is first
    assert strip.current_index() == 1 and strip.position.text() == "2 of 2"
    assert len(results.entries(doc)) == 2
    qtbot.mouseClick(strip.prev_button, Qt.MouseButton.LeftButton)
    assert strip.current_index() == 0 and gen._shown == 0
    assert not strip.prev_button.isEnabled() and strip.next_button.isEnabled()
    qtbot.mouseClick(strip.next_button, Qt.MouseButton.LeftButton)
    assert strip.current_index() == 1
    qtbot.mouseClick(strip.discard_button, Qt.MouseButton.LeftButton)
    assert len(strip.candidates) == 1 and len(results.entries(doc)) == 1


def test_results_are_saved_with_the_project_and_accept_after_reopening(qtbot, win, tmp_path):
    from canvasai.formats.ora import load_ora, save_ora

    gen, doc = win.generation, win.document
    paint_mask(doc, 60, 50, 10)
    gen.panel.grow.setValue(2)
    gen.panel.feather.setValue(3)
    gen.panel.batch.setValue(2)
    press_generate(qtbot, gen)
    seeds = [c.seed for c in gen.strip.candidates]
    images = [c.image.copy() for c in gen.strip.candidates]
    assert len(seeds) == 2
    save_ora(doc, tmp_path / "p.ora")
    reopened = load_ora(tmp_path / "p.ora")
    win.set_document(reopened)
    strip = gen.strip
    assert [c.seed for c in strip.candidates] == seeds
    assert all(np.array_equal(a, c.image) for a, c in zip(images, strip.candidates, strict=True))
    strip.select(1)
    assert win.canvas._preview is not None
    before = Compositor(reopened).flatten()
    qtbot.mouseClick(strip.accept_button, Qt.MouseButton.LeftButton)
    after = Compositor(reopened).flatten()
    layer = reopened.layers[-1]
    assert layer.generation["seed"] == seeds[1] and layer.generation["flow"] == "inpaint"
    yy, xx = np.mgrid[0:96, 0:128]
    far = np.hypot(xx + 0.5 - 60, yy + 0.5 - 50) > 10 + 2 + 3 + 2
    assert np.array_equal(after[far], before[far]) and not np.array_equal(after, before)
    assert [c.seed for c in strip.candidates] == seeds[:1]
    assert [e["seed"] for e in results.entries(reopened)] == seeds[:1]


def test_new_seed_makes_as_many_candidates_as_the_batch_size(qtbot, win):
    gen, doc = win.generation, win.document
    paint_mask(doc, 40, 40, 8)
    press_generate(qtbot, gen)
    assert len(gen.strip.candidates) == 1
    gen.panel.batch.setValue(3)
    qtbot.mouseClick(gen.strip.rerun_new, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert len(gen.strip.candidates) == 4
    new = gen.strip.candidates[1:]
    assert len({c.seed for c in new}) == 3 and gen.strip.current_index() == 1


def test_hold_to_compare_shows_the_canvas_without_the_candidate(qtbot, win):
    gen, doc = win.generation, win.document
    paint_mask(doc, 40, 40, 8)
    press_generate(qtbot, gen)
    assert win.canvas._preview is not None
    win.activateWindow()
    win.canvas.setFocus()
    qtbot.keyPress(win.canvas, Qt.Key.Key_C)
    assert win.canvas._preview is None
    qtbot.keyRelease(win.canvas, Qt.Key.Key_C)
    assert win.canvas._preview is not None
    gen.strip.compare_button.pressed.emit()
    assert win.canvas._preview is None
    gen.strip.compare_button.released.emit()
    assert win.canvas._preview is not None
    # typing a C into the prompt is typing, not comparing
    gen.panel.prompt.setFocus()
    qtbot.keyClick(gen.panel.prompt, Qt.Key.Key_C)
    assert win.canvas._preview is not None and "c" in gen.panel.prompt.toPlainText().lower()


def test_hold_to_compare_watches_events_only_while_c_is_held(qtbot, monkeypatch):
    """No app-wide event filter runs Python for every Qt event (each one took the GIL,
    waiting behind a model load): the release of C is watched only while C is held, and
    it ends the comparison wherever the focus went, as does leaving the window."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from canvasai.ui.generation_controller import GenerationController

    seen: list[QEvent.Type] = []
    real = GenerationController.eventFilter

    def counting(self, obj, event):  # noqa: ANN001, ANN202
        seen.append(event.type())
        return real(self, obj, event)

    # before the window is built: PySide looks a Python override up once
    monkeypatch.setattr(GenerationController, "eventFilter", counting)
    win = generation_window(qtbot, noise_into(Document(128, 96), seed=1))
    win.show()
    gen, doc = win.generation, win.document
    paint_mask(doc, 40, 40, 8)
    press_generate(qtbot, gen)
    seen.clear()
    win.activateWindow()
    win.canvas.setFocus()
    win.resize(win.width() + 10, win.height())
    qtbot.mouseMove(win.canvas)
    qtbot.wait(50)
    assert seen == []  # idle: nothing filtered
    qtbot.keyPress(win.canvas, Qt.Key.Key_C)
    assert win.canvas._preview is None
    gen.panel.prompt.setFocus()  # the focus moves while C is held
    qtbot.keyRelease(gen.panel.prompt, Qt.Key.Key_C)
    assert win.canvas._preview is not None and seen
    seen.clear()
    win.resize(win.width() - 10, win.height())
    qtbot.wait(50)
    assert seen == []  # released: watching stopped
    win.canvas.setFocus()
    qtbot.keyPress(win.canvas, Qt.Key.Key_C)
    assert win.canvas._preview is None
    QApplication.sendEvent(QApplication.instance(), QEvent(QEvent.Type.ApplicationDeactivate))
    assert win.canvas._preview is not None  # leaving the window ends it too
    seen.clear()
    qtbot.wait(50)
    assert seen == []
    gen.shutdown()


@pytest.mark.parametrize(("step", "total", "items", "asked", "shown"), [
    (1, 61, 1, 60, (1, 60, 1)),  # PNDM: N + 1 callbacks
    (61, 61, 1, 60, (60, 60, 1)),
    (62, 122, 2, 60, (1, 60, 2)),
    (3, 4, 1, 4, (3, 4, 1)),
    (1, 2, 1, 30, (1, 2, 1)),  # classic: its own two stages
    (5, 10, 2, 5, (5, 5, 1)),
])
def test_the_step_counter_counts_the_steps_asked_for(step, total, items, asked, shown):
    assert shown_steps(step, total, items, asked) == shown


def test_the_preview_mask_is_the_paste_alpha_cut_to_where_it_reaches(qtbot):
    """Only the area around the mask is feathered (cheap on a big canvas), with the same
    values as feathering the whole mask, also where the mask touches the canvas edge."""
    from canvasai.generation import flows
    from canvasai.generation.params import FlowParams
    from canvasai.ui.generation_controller import preview_mask, through_mask

    doc = Document(300, 200)
    paint_mask(doc, 150, 100, 12)
    paint_mask(doc, 4, 190, 6)
    for grow, feather in ((0, 0), (3, 9)):
        job = flows.plan(doc, "inpaint", FlowParams(grow_px=grow, feather_px=feather))
        full = flows.preview_alpha(job)
        alpha, sub = preview_mask(job)
        cut = np.zeros_like(full)
        cut[sub.slices()] = alpha
        assert np.array_equal(cut, full) and sub.w * sub.h < full.size
        frame = np.full((full.shape[0] // 3, full.shape[1] // 3, 4), 200, np.uint8)
        part, where = through_mask(frame, job.preview_rect, (alpha, sub))
        assert where == sub.translated(job.preview_rect.x, job.preview_rect.y)
        assert part.shape[:2] == alpha.shape and not part[..., 3][alpha == 0].any()
