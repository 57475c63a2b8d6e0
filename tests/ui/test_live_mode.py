"""Live painting in the real window (pytest-qt, offscreen): strokes start live jobs, only
the newest frame shows, Apply is one undo step, Live off stops everything.

A held backend (its jobs wait until released, checking cancel every 10 ms) stands in
for a slow model where the test is about which jobs run; the tiny random SD 1.x model
runs the real path (service -> router -> diffusers img2img) where frames matter.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.generation import live
from tests.ui.test_generation_flows import generation_window, noise_into, sketch_line

TIMEOUT_MS = 60_000
LEFT, NO_MOD = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


@pytest.fixture
def win(qtbot):
    w = generation_window(qtbot, noise_into(Document(128, 96)))
    w.resize(1000, 760)
    w.show()
    qtbot.waitExposed(w)
    w.canvas.fit_to_view()
    w.select_tool("brush")
    w.brush.size = 6
    yield w
    w.live.shutdown()
    w.generation.shutdown()


def dab(qtbot, win, x: float, y: float) -> None:
    """One brush stroke (press + release) at document point (x, y), through the canvas."""
    p = win.canvas.map_from_doc(x, y).toPoint()
    qtbot.mousePress(win.canvas, LEFT, NO_MOD, QPoint(p))
    qtbot.mouseRelease(win.canvas, LEFT, NO_MOD, QPoint(p))


class HeldBackend:
    """Returns the request's picture tinted, once `release` is set; counts its runs."""

    name = "held"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs: list[int] = []
        self.lock = threading.Lock()
        self.metadata: dict = {}

    def run(self, request, ctx):
        from canvasai.backends.api import GenerationResult

        with self.lock:
            self.runs.append(ctx.job_id)
        while not self.release.is_set():
            ctx.check_cancelled()
            time.sleep(0.01)
        ctx.check_cancelled()
        image = np.array(request.image, copy=True)
        image[..., 2] = 255 - image[..., 2]
        return GenerationResult((image,), (int(request.seed),), dict(self.metadata))


@pytest.fixture
def held(win):
    from canvasai.generation.service import GenerationService

    backend = HeldBackend()
    win.generation._service = GenerationService(backend_factory=lambda r: backend,
                                                preview_interval=0)
    win.generation.panel.add_model_path("/models/a-live-model")  # any diffusion model
    yield backend
    backend.release.set()


@pytest.fixture
def tiny(win, tiny_models, monkeypatch):
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tiny_models.root))
    gen = win.generation
    gen.panel.add_model_path(str(tiny_models.sd1))
    gen.panel.set_models([])  # a later registry scan must not drop the model picked by path
    return tiny_models


def test_ten_strokes_while_a_job_runs_lead_to_at_most_two_more_jobs(qtbot, win, held):
    mode, svc = win.live, win.generation.service
    cancelled: list[int] = []
    svc.cancelled.connect(cancelled.append)
    mode.set_on(True)
    qtbot.waitUntil(lambda: len(held.runs) == 1, timeout=TIMEOUT_MS)  # the first frame runs
    first = held.runs[0]
    for i in range(10):
        dab(qtbot, win, 20 + i * 9, 40 + (i % 3) * 10)
        qtbot.wait(30)  # every stroke end reaches the live mode while the job runs
    # once the strokes pause, one new job goes and the running one (stale) is dropped
    qtbot.waitUntil(lambda: len(held.runs) == 2, timeout=TIMEOUT_MS)
    assert first in cancelled and svc.pending_jobs() == [held.runs[1]]
    held.release.set()
    qtbot.waitUntil(lambda: mode.frame is not None and not svc.pending_jobs(),
                    timeout=TIMEOUT_MS)
    assert len(held.runs) <= 3 and mode.jobs_submitted <= 3, held.runs
    # the frame shown was made from the canvas after the last stroke
    job, _image = mode.frame
    now = live.plan_live(win.document, win.generation.panel.params(),
                         strength=mode.bar.strength.value()).request
    assert np.array_equal(job.request.image, now.image)
    assert win.canvas.live_overlay == job.target
    assert "last frame" in mode.status_label.text()


def test_strokes_while_a_frame_is_made_go_when_it_lands(qtbot, win, held, monkeypatch):
    """A stream of strokes longer than a job: each frame that lands starts the next job
    at once, with every stroke made meanwhile (no job per stroke, no waiting for a pause)."""
    from canvasai.ui import live_mode

    monkeypatch.setattr(live_mode, "STREAM_MS", 600_000)  # the strokes never pause
    mode = win.live
    mode.set_on(True)
    qtbot.waitUntil(lambda: len(held.runs) == 1, timeout=TIMEOUT_MS)
    dab(qtbot, win, 30, 30)
    qtbot.wait(10)
    held.release.set()  # the first job's frame lands before the strokes pause
    qtbot.waitUntil(lambda: mode.jobs_submitted == 2, timeout=TIMEOUT_MS)
    assert len(held.runs) <= 2


def test_live_jobs_are_planned_off_the_gui_thread_one_at_a_time(qtbot, win, held,
                                                                 monkeypatch):
    """Planning composites the live area (0.1-0.5 s for a big document of many layers):
    it runs on a pool thread from a snapshot, one plan at a time; what changes meanwhile
    goes into the next plan, and a plan still running when Live goes off is dropped."""
    from canvasai.ui import live_mode

    real_plan = live.plan_live
    gates: list[threading.Event] = []
    planned: list[tuple[str, Document]] = []

    def slow_plan(doc, params, style=None, **kw):  # noqa: ANN001, ANN202
        gate = threading.Event()
        gates.append(gate)
        planned.append((threading.current_thread().name, doc))
        gate.wait(30)
        return real_plan(doc, params, style, **kw)

    monkeypatch.setattr(live, "plan_live", slow_plan)
    monkeypatch.setattr(live_mode, "STROKE_DELAY_MS", 0)
    mode, doc = win.live, win.document
    mode.set_on(True)
    qtbot.waitUntil(lambda: len(gates) == 1, timeout=TIMEOUT_MS)
    thread, snap = planned[0]
    assert thread != threading.current_thread().name and snap is not doc
    assert mode.on and mode.jobs_submitted == 0  # the window went on meanwhile
    dab(qtbot, win, 30, 30)  # painted while the plan runs: not in its snapshot ...
    assert not np.array_equal(snap.layers[-1].surface.read(doc.rect),
                              doc.layers[-1].surface.read(doc.rect))
    qtbot.wait(100)
    assert len(gates) == 1  # ... and no second plan beside it
    gates[0].set()
    qtbot.waitUntil(lambda: len(gates) == 2, timeout=TIMEOUT_MS)  # the next plan has it
    assert mode.jobs_submitted == 1
    assert np.array_equal(planned[1][1].layers[-1].surface.read(doc.rect),
                          doc.layers[-1].surface.read(doc.rect))
    mode.set_on(False)  # off while the second plan runs: its job is never submitted
    gates[1].set()
    qtbot.wait(300)
    assert mode.jobs_submitted == 1 and not mode.on
    assert not win.generation.service.pending_jobs()


def test_live_off_leaves_no_job_running(qtbot, win, held):
    mode, svc = win.live, win.generation.service
    win.activateWindow()
    qtbot.keyClick(win, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # Ctrl+L: on
    assert mode.on and mode.bar.toggle.isChecked()
    qtbot.waitUntil(lambda: len(held.runs) == 1, timeout=TIMEOUT_MS)
    assert svc.pending_jobs() and mode.on
    assert mode.bar.toggle.isChecked()
    qtbot.mouseClick(mode.bar.toggle, LEFT)  # and off, with the Live bar's button
    assert not mode.on and not svc.pending_jobs() and not svc.pending_jobs()
    assert win.canvas.live_overlay is None and not mode.bar.details.isVisible()
    # nothing of the cancelled job reaches the generation panel
    assert win.generation.panel.step_label.text() != "Cancelled"


def test_showing_another_document_stops_live_for_the_old_one(qtbot, win, held):
    mode, svc = win.live, win.generation.service
    mode.set_on(True)
    qtbot.waitUntil(lambda: len(held.runs) == 1, timeout=TIMEOUT_MS)
    win.add_document(Document(64, 64), replace_blank=False)
    assert not mode.on and not mode.action.isChecked() and not svc.pending_jobs()
    assert win.canvas.live_overlay is None


def test_classic_cannot_go_live_and_says_why(qtbot, win):
    win.generation.panel.model.setCurrentIndex(win.generation.panel.model.findData("classic"))
    qtbot.mouseClick(win.live.bar.toggle, LEFT)
    assert not win.live.on and not win.live.action.isChecked()
    assert not win.live.bar.toggle.isChecked()
    assert "diffusion model" in win.generation.panel.message.text()


def test_tiny_model_frame_apply_is_one_undo_step_and_outside_stays(qtbot, win, tiny):
    doc, mode = win.document, win.live
    area = Rect(32, 16, 64, 64)
    live.set_live_frame(doc, area)
    before = Compositor(doc).flatten()
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    assert win.canvas.live_overlay == area and win.canvas.live_overlay_shown
    assert mode.frame[0].request.live and mode.last_latency is not None
    # the same canvas and settings give the same frame
    first = mode.frame[1].copy()
    mode._settings_changed()
    qtbot.waitUntil(lambda: mode.frame is not None and mode.frame[1] is not first
                    and not win.generation.service.pending_jobs(), timeout=TIMEOUT_MS)
    assert np.array_equal(mode.frame[1], first)
    n_layers, n_hist = len(doc.layers), len(doc.history.entries)
    assert mode.apply()
    qtbot.waitUntil(lambda: not mode.applying, timeout=TIMEOUT_MS)
    assert len(doc.history.entries) == n_hist + 1 and len(doc.layers) == n_layers
    after = Compositor(doc).flatten()
    outside = np.ones(after.shape[:2], bool)
    outside[area.slices()] = False
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[area.slices()], before[area.slices()])
    assert win.canvas.live_overlay is None  # the frame is on the canvas now
    doc.undo()
    assert np.array_equal(Compositor(doc).flatten(), before)
    qtbot.wait(300)
    assert not win.generation.service.pending_jobs() or mode.on  # the undo may re-run live


def test_tiny_model_stroke_outside_the_live_area_starts_no_job(qtbot, win, tiny):
    doc, mode = win.document, win.live
    live.set_live_frame(doc, Rect(0, 0, 48, 48))
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    n = mode.jobs_submitted
    assert win.canvas.live_overlay_shown
    at = QPoint(win.canvas.map_from_doc(100, 80).toPoint())  # outside
    qtbot.mousePress(win.canvas, LEFT, NO_MOD, at)
    assert not win.canvas.live_overlay_shown  # the frame steps aside while painting
    qtbot.mouseRelease(win.canvas, LEFT, NO_MOD, at)
    qtbot.wait(400)
    assert win.canvas.live_overlay_shown
    assert mode.jobs_submitted == n and not win.generation.service.pending_jobs()
    assert win.canvas.live_overlay is not None  # the frame stays: it still matches
    dab(qtbot, win, 20, 20)  # inside
    qtbot.waitUntil(lambda: mode.jobs_submitted == n + 1, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.generation.service.pending_jobs(), timeout=TIMEOUT_MS)
    assert win.canvas.live_overlay == Rect(0, 0, 48, 48)


def test_apply_as_layer_and_the_overlay_controls(qtbot, win, held):
    doc, mode, canvas = win.document, win.live, win.canvas
    selection_area = Rect(8, 8, 64, 48)
    from canvasai.document import selection

    selection.select_rect(doc, selection_area)
    held.release.set()
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    assert canvas.live_overlay == selection_area
    mode.bar.show_box.setChecked(False)
    assert not canvas.live_overlay_shown
    mode.bar.show_box.setChecked(True)
    mode.bar.opacity.setValue(40)
    assert canvas.live_overlay_shown and abs(canvas._live_opacity - 0.4) < 1e-6
    mode.bar.pin.setChecked(True)  # pinned: deselecting keeps the area
    selection.select_none(doc)
    assert live.live_area(doc) == (selection_area, "frame")
    n_layers, n_hist = len(doc.layers), len(doc.history.entries)
    qtbot.waitUntil(lambda: mode.bar.layer_button.isEnabled(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(mode.bar.layer_button, LEFT)
    qtbot.waitUntil(lambda: not mode.applying, timeout=TIMEOUT_MS)
    assert len(doc.layers) == n_layers + 1 and len(doc.history.entries) == n_hist + 1
    top = doc.layers[-1]
    assert top.surface.bounds().intersect(doc.rect) == selection_area
    assert doc.metadata["generation_history"][-1]["flow"] == "live"


def test_a_frame_the_full_vae_decoded_is_applied_as_shown(qtbot, win, held):
    doc, mode = win.document, win.live
    held.release.set()
    held.metadata = {"decoder": "vae"}
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    runs, n_hist = len(held.runs), len(doc.history.entries)
    shown = mode.frame[1].copy()
    assert mode.apply() and not mode.applying  # at once: no second run
    assert len(held.runs) == runs and mode.applied_directly == 1
    assert len(doc.history.entries) == n_hist + 1
    assert np.array_equal(doc.active_layer.surface.read(doc.rect), shown)


def test_apply_into_a_locked_layer_makes_a_new_layer_instead(qtbot, win, held):
    doc, mode = win.document, win.live
    held.release.set()
    held.metadata = {"decoder": "vae"}
    doc.active_layer.locked = True
    before = doc.active_layer.surface.read(doc.rect)
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    n_layers = len(doc.layers)
    assert mode.apply(new_layer=False)
    assert len(doc.layers) == n_layers + 1
    assert np.array_equal(doc.layers[-2].surface.read(doc.rect), before)


def test_tiny_model_control_layer_goes_live_and_its_strokes_start_jobs(qtbot, win, tiny):
    from canvasai.document.layer import ControlRole

    doc, mode = win.document, win.live
    sketch = sketch_line(doc, range(20, 110, 6), 48, 3)
    doc.set_layer_properties(sketch, role=ControlRole(kind="scribble",
                                                      model=str(tiny.controlnet_scribble)))
    mode.set_on(True)
    qtbot.waitUntil(lambda: mode.frame is not None, timeout=TIMEOUT_MS)
    assert len(mode.frame[0].request.controls) == 1, win.generation.panel.message.text()
    n, before = mode.jobs_submitted, mode.frame[0]
    doc.set_active(sketch)
    dab(qtbot, win, 60, 70)  # a stroke on the control layer changes the frame's guide
    qtbot.waitUntil(lambda: mode.jobs_submitted == n + 1, timeout=TIMEOUT_MS)
    # the new frame, not the service's "done" alone: its result reaches the window after
    qtbot.waitUntil(lambda: mode.frame is not None and mode.frame[0] is not before,
                    timeout=TIMEOUT_MS)
    job = mode.frame[0]
    assert job.request.controls[0].image[70, 60].max() < 128  # the new stroke is in it
    assert win.generation.panel.message.text() == ""
