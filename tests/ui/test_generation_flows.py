"""The four editing flows driven through the real widgets (pytest-qt, offscreen).

Classic (OpenCV) runs are fast and deterministic; the tiny random-weight diffusers
models check live previews, cancel and the sketch flow through the same code a real
model takes.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.document.stroke import Stroke
from canvasai.ui.main_window import MainWindow

TIMEOUT_MS = 60_000


def noise_into(doc: Document, seed: int = 0) -> Document:
    """Opaque noise over `doc`'s active layer: a picture every flow can read."""
    px = np.random.default_rng(seed).integers(0, 255, (doc.height, doc.width, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc.active_layer.surface.write(0, 0, px)
    return doc


def generation_window(qtbot, doc: Document) -> MainWindow:
    """The main window with generation attached as the app wires it, showing `doc`."""
    from canvasai.app import _attach_generation

    w = MainWindow()
    qtbot.addWidget(w)
    _attach_generation(w)
    w.set_document(doc)
    w.generation.document_replaced(doc)
    return w


@pytest.fixture
def win(qtbot):
    w = generation_window(qtbot, noise_into(Document(192, 160)))
    w.show()
    yield w
    w.generation.shutdown()


def sketch_line(doc: Document, xs: range, y: float, radius: float) -> Layer:
    """A new layer "Sketch" with a black line of dabs at `xs` along row `y`."""
    sketch = doc.add_layer("Sketch")
    s = Stroke(sketch.surface, doc.rect, color=(0, 0, 0))
    for x in xs:
        s.dab(x, y, radius)
    s.finish()
    return sketch


def paint_mask(doc, cx, cy, r):
    s = Stroke(doc.mask, doc.rect)
    s.dab(cx, cy, r, 1.0)
    doc.push_tiles_command("mask", s.finish(), s.rect, "Mask")
    doc.mask_changed.emit(s.rect)


def press_generate(qtbot, gen):
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)


def test_inpaint_flow_accept_adds_one_layer_and_keeps_pixels_outside(qtbot, win):
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 14)
    before = Compositor(doc).flatten()
    gen.panel.grow.setValue(2)
    gen.panel.feather.setValue(4)
    press_generate(qtbot, gen)
    assert len(gen.strip.candidates) == 1, gen.panel.message.text()
    n_layers, n_hist = len(doc.layers), len(doc.history.entries)
    qtbot.mouseClick(gen.strip.accept_button, Qt.MouseButton.LeftButton)
    assert len(doc.layers) == n_layers + 1 and len(doc.history.entries) == n_hist + 1
    layer = doc.layers[-1]
    assert layer.name.startswith("Generated:") and layer.generation["flow"] == "inpaint"
    after = Compositor(doc).flatten()
    yy, xx = np.mgrid[0:doc.height, 0:doc.width]
    far = np.hypot(xx + 0.5 - 96, yy + 0.5 - 80) > 14 + 2 + 4 + 2
    assert np.array_equal(after[far], before[far])
    assert not np.array_equal(after[80, 96], before[80, 96])
    assert doc.metadata["generation_history"][-1]["flow"] == "inpaint"
    doc.undo()
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_outpaint_flow_grows_the_canvas(qtbot, win):
    gen, doc = win.generation, win.document
    before = Compositor(doc).flatten()
    gen.panel.set_flow("outpaint")
    gen.panel.set_margins((0, 0, 64, 32))
    assert win.canvas.frame_rect == Rect(0, 0, 192 + 64, 160 + 32)
    press_generate(qtbot, gen)
    assert gen.accept(0)
    assert (doc.width, doc.height) == (256, 192)
    assert np.array_equal(Compositor(doc).flatten()[:160, :192], before)
    assert win.canvas.frame_rect is None  # the frame is consumed
    doc.undo()
    assert (doc.width, doc.height) == (192, 160)


def test_upscale_flow_resizes_or_opens_a_new_document(qtbot, win):
    gen, doc = win.generation, win.document
    gen.panel.set_flow("upscale")
    press_generate(qtbot, gen)
    gen.accept(0)
    qtbot.waitUntil(lambda: not gen.accepting, timeout=TIMEOUT_MS)
    assert (doc.width, doc.height) == (384, 320)
    doc.undo()
    gen.panel.upscale_target.setCurrentIndex(gen.panel.upscale_target.findData("new_document"))
    press_generate(qtbot, gen)
    gen.accept(0)
    qtbot.waitUntil(lambda: not gen.accepting, timeout=TIMEOUT_MS)
    assert win.document is not doc and (win.document.width, win.document.height) == (384, 320)
    assert (doc.width, doc.height) == (192, 160)


def test_classic_backend_refuses_sketch_with_a_clear_message_and_no_change(qtbot, win):
    gen, doc = win.generation, win.document
    gen.panel.set_flow("sketch")
    n = len(doc.history.entries)
    press_generate(qtbot, gen)
    assert "model" in gen.panel.message.text().lower()
    assert not gen.strip.candidates and len(doc.history.entries) == n


def test_inpaint_without_mask_explains_itself(qtbot, win):
    gen = win.generation
    gen.panel.set_flow("inpaint")
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)  # planned off the GUI thread
    assert "mask" in gen.panel.message.text().lower()


def test_batch_candidates_discard_and_accept_all(qtbot, win):
    gen, doc = win.generation, win.document
    paint_mask(doc, 50, 50, 8)
    gen.panel.batch.setValue(3)
    press_generate(qtbot, gen)
    assert [c.seed for c in gen.strip.candidates] == sorted(c.seed for c in gen.strip.candidates)
    assert len(gen.strip.candidates) == 3
    gen.discard(1)
    n = len(doc.history.entries)
    gen.accept_all()
    assert len(doc.history.entries) == n + 1 and not gen.strip.candidates
    assert sum(la.name.startswith("Generated") for la in doc.layers) == 2


# --------------------------------------------------------------------------- tiny diffusers
@pytest.fixture
def tiny_env(tiny_models, monkeypatch):
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tiny_models.root))
    return tiny_models


def use_model(gen, path):
    gen.panel.add_model_path(str(path))
    gen.panel.set_models([])  # a later registry scan must not drop a model picked by path
    assert gen.panel.model.currentData() == str(path)
    gen.panel.steps.setValue(4)


def test_diffusers_inpaint_streams_previews_onto_the_canvas(qtbot, win, tiny_env):
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 20)
    use_model(gen, tiny_env.sd1_inpaint)
    frames = []
    orig = win.canvas.set_preview

    def spy(rgba, rect=None):
        frames.append((None if rgba is None else rgba.shape, rect))
        orig(rgba, rect)

    win.canvas.set_preview = spy
    press_generate(qtbot, gen)
    assert gen.strip.candidates, gen.panel.message.text()
    shown = [f for f in frames if f[0] is not None]
    # drawn inside the job's rectangle, only as far as the feathered mask reaches
    pr = gen.strip.candidates[0].job.preview_rect
    assert shown and shown[0][1].intersect(pr) == shown[0][1] and shown[0][1] != pr
    assert gen.first_preview_at is not None


def test_cancel_mid_job_leaves_the_document_exactly_as_before(qtbot, win, tiny_env):
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 20)
    use_model(gen, tiny_env.sd1_inpaint)
    gen.panel.steps.setValue(200)
    before = Compositor(doc).flatten()
    n_layers, n_hist = len(doc.layers), len(doc.history.entries)
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gen.panel.progress.value() >= 1, timeout=TIMEOUT_MS)
    qtbot.keyClick(win, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert gen.panel.step_label.text() == "Cancelled"
    assert not gen.strip.candidates
    assert len(doc.layers) == n_layers and len(doc.history.entries) == n_hist
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_sketch_render_lands_above_the_sketch_layer(qtbot, win, tiny_env):
    gen, doc = win.generation, win.document
    sketch = sketch_line(doc, range(40, 150, 6), 80, 4)
    top = doc.add_layer("Top")
    doc.set_active(sketch)
    gen.mark_active_as_sketch()
    doc.set_active(top)
    gen.panel.set_flow("sketch")
    gen.panel.sketch_mask.setChecked(False)
    use_model(gen, tiny_env.sd1)
    gen.panel.controlnet.addItem("tiny cn", str(tiny_env.controlnet_scribble))
    gen.panel.controlnet.setCurrentIndex(gen.panel.controlnet.count() - 1)
    press_generate(qtbot, gen)
    assert gen.strip.candidates, gen.panel.message.text()
    assert gen.accept(0)
    idx = doc.index_of(sketch)
    assert doc.layers[idx + 1].generation["flow"] == "sketch"


def test_generate_then_close_asks_to_save_and_autosave_keeps_the_history(
        qtbot, win, monkeypatch):
    from canvasai.formats.ora import load_ora

    gen, doc = win.generation, win.document
    doc.history.mark_clean()
    win.files._autosaved = (id(doc), doc.history.revision)  # as if just saved
    assert not win.is_modified() and not win.files.needs_autosave()
    paint_mask(doc, 96, 80, 10)
    doc.history.mark_clean()
    win.files._autosaved = (id(doc), doc.history.revision)
    press_generate(qtbot, gen)
    assert len(gen.strip.candidates) == 1, gen.panel.message.text()
    # Nothing accepted, but the job is in the document's history: that is worth saving.
    assert win.is_modified() and win.files.needs_autosave()
    from PySide6.QtWidgets import QMessageBox

    from canvasai.core import settings

    settings.update(**{"ui/confirm_dialogs": True})
    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Cancel))
    assert not win.close() and asked == ["The document has unsaved changes."]
    with qtbot.waitSignal(win.files.autosaved, timeout=TIMEOUT_MS):
        assert win.files.autosave_now()
    recovered = load_ora(win.files.recovery.ora_path)
    entry = recovered.metadata["generation_history"][-1]
    assert entry["flow"] == "inpaint" and entry["seed"] == gen.strip.candidates[0].seed


def test_edit_flow_with_an_edit_model_changes_only_the_selection(qtbot, win, tmp_path,
                                                                   monkeypatch):
    """A person picks Flux Kontext from the models folder: Auto becomes Edit, the
    instruction is applied to the selection, the result lands as one undoable layer."""
    from canvasai.document.selection import select_rect
    from tests.support import tiny_families

    models_dir = tmp_path / "models"
    tiny_families.cached("flux-kontext", models_dir)
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    from canvasai.core import settings

    settings.reset(settings.MemoryStore())  # the environment is read when settings load
    gen, doc = win.generation, win.document
    gen.refresh_models()
    qtbot.waitUntil(lambda: gen.panel.model.findData("flux-kontext") >= 0, timeout=TIMEOUT_MS)
    gen.panel.model.setCurrentIndex(gen.panel.model.findData("flux-kontext"))
    assert gen.panel.steps.value() == 28 and not gen.panel.negative.isEnabled()
    gen.panel.steps.setValue(2)
    gen.panel.prompt.setPlainText("make it night")
    select_rect(doc, Rect(64, 48, 48, 48))
    before = Compositor(doc).flatten()
    press_generate(qtbot, gen)
    assert gen.strip.candidates, gen.panel.message.text()
    assert gen.strip.candidates[0].job.flow == "edit"
    qtbot.mouseClick(gen.strip.accept_button, Qt.MouseButton.LeftButton)
    after = Compositor(doc).flatten()
    reach = gen.panel.grow.value() + gen.panel.feather.value() + 2
    far = np.ones(after.shape[:2], bool)
    far[max(0, 48 - reach) : 96 + reach, max(0, 64 - reach) : 112 + reach] = False
    assert far.sum() > 0.3 * far.size and np.array_equal(after[far], before[far])
    assert not np.array_equal(after, before)
    doc.undo()
    assert np.array_equal(Compositor(doc).flatten(), before)


# --------------------------------------------------------------------------- previews in the mask
class HeldBackend:
    """Sends a solid magenta preview at step 1 (a quarter of the job's size), then waits for
    `release` (checking cancel) and returns magenta results: a job that stays 'running'."""

    name = "held"

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def run(self, request, ctx):
        import time as _t

        from canvasai.backends.api import GenerationResult

        h, w = (request.image.shape[:2] if request.image is not None
                else (request.height, request.width))
        frame = np.zeros((max(1, h // 4), max(1, w // 4), 4), np.uint8)
        frame[...] = (255, 0, 255, 255)
        ctx.progress(1, request.steps)
        ctx.preview(1, frame)
        while not self.release.is_set():
            ctx.check_cancelled()
            _t.sleep(0.01)
        image = np.zeros((h, w, 4), np.uint8)
        image[...] = (255, 0, 255, 255)
        n = request.batch_size
        return GenerationResult(tuple(image.copy() for _ in range(n)),
                                tuple(int(request.seed) + i for i in range(n)))


@pytest.fixture
def held(win):
    from canvasai.generation.service import GenerationService

    backend = HeldBackend()
    win.generation._service = GenerationService(backend_factory=lambda r: backend,
                                                preview_interval=0)
    yield backend
    backend.release.set()


def screen(win) -> np.ndarray:
    """The canvas widget as a person sees it, (h, w, 4) RGBA."""
    from PySide6.QtGui import QImage

    img = win.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = img.height(), img.width()
    rows = np.frombuffer(img.constBits(), np.uint8, img.bytesPerLine() * h)
    return rows.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def doc_on_screen(win, pixels: np.ndarray) -> np.ndarray:
    """The on-screen pixels of the whole document at zoom 1, offset (8, 8)."""
    doc = win.document
    return pixels[8 : 8 + doc.height, 8 : 8 + doc.width]


def zoom_one(qtbot, win) -> None:
    from PySide6.QtCore import QPointF

    win.resize(1000, 800)
    win.canvas.view.zoom = 1.0
    win.canvas.view.offset = QPointF(8, 8)
    win.canvas.update()


def test_inpaint_preview_only_covers_the_feathered_mask_and_strokes_stay_visible(
        qtbot, win, held):
    from canvasai.generation import flows

    gen, doc = win.generation, win.document
    zoom_one(qtbot, win)
    paint_mask(doc, 96, 80, 14)
    gen.panel.set_flow("inpaint")
    gen.panel.grow.setValue(2)
    gen.panel.feather.setValue(4)
    win.canvas.set_mask_visible(False)  # the tint is not what is checked here
    before = doc_on_screen(win, screen(win))
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.canvas._preview is not None, timeout=TIMEOUT_MS)
    assert gen.busy
    job = next(iter(gen._jobs.values()))
    alpha = np.zeros((doc.height, doc.width), np.float32)
    r = job.preview_rect
    alpha[r.slices()] = flows.preview_alpha(job)
    # a stroke painted while the job runs, inside the job's rectangle but outside the mask
    dab = Rect(r.x + 2, r.y + 2, 4, 4)
    assert not alpha[dab.slices()].any()
    doc.write_pixels(doc.active_layer, dab.x, dab.y, np.full((4, 4, 4), (0, 0, 0, 255), np.uint8))
    during = doc_on_screen(win, screen(win))
    outside = alpha == 0
    stroke = np.zeros_like(outside)
    stroke[dab.slices()] = True
    keep = outside & ~stroke
    assert np.array_equal(during[keep], before[keep])
    assert (during[alpha == 1][:, :3] == (255, 0, 255)).all()
    assert (during[r.y + 3, r.x + 3, :3] == 0).all()  # the new stroke shows
    held.release.set()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    shown = doc_on_screen(win, screen(win))  # the candidate, through the same mask
    assert np.array_equal(shown[keep], before[keep])
    assert (shown[alpha == 1][:, :3] == (255, 0, 255)).all()


def test_outpaint_preview_covers_only_the_new_area(qtbot, win, held):
    gen, doc = win.generation, win.document
    zoom_one(qtbot, win)
    gen.panel.set_flow("outpaint")
    gen.panel.set_margins((0, 0, 48, 24))
    win.canvas.set_frame_rect(None)  # the frame's outline is not what is checked here
    before = screen(win)
    qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.canvas._preview is not None, timeout=TIMEOUT_MS)
    during = screen(win)
    old = (slice(8, 8 + doc.height), slice(8, 8 + doc.width))
    assert np.array_equal(during[old], before[old])
    new_right = during[8 : 8 + doc.height, 8 + doc.width + 2 : 8 + doc.width + 46]
    assert (new_right[..., :3] == (255, 0, 255)).all()
    gen.cancel()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert win.canvas._preview is None and (doc.width, doc.height) == (192, 160)


# --------------------------------------------------------------------------- the queue
def test_generate_while_a_job_runs_queues_it_and_each_entry_can_be_moved_or_cancelled(
        qtbot, win, held):
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 10)
    before = Compositor(doc).flatten()
    n_layers = len(doc.layers)
    qv = gen.queue_view
    click = qtbot.mouseClick
    click(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gen._running is not None, timeout=TIMEOUT_MS)
    a = gen._running
    assert gen.panel.generate_button.text().startswith("Generate")
    gen.panel.prompt.setPlainText("second")
    click(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    gen.panel.prompt.setPlainText("third")
    click(gen.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(qv.job_ids()) == 3, timeout=TIMEOUT_MS)  # once planned
    ids = qv.job_ids()
    assert ids[0] == a and gen.busy
    b, c = ids[1:]
    assert qv.list.item(0).text().startswith("▶") and qv.list.item(2).text().startswith("2. ")
    assert "“third”" in qv.list.item(2).text() and qv.summary.text() == "1 running, 2 waiting"
    assert gen.queue_dock.isVisible()
    qv.select_job(c)
    assert qv.up_button.isEnabled() and not qv.down_button.isEnabled()
    click(qv.up_button, Qt.MouseButton.LeftButton)
    assert qv.job_ids() == [a, c, b] and gen.service.pending_jobs() == [a, c, b]
    qv.select_job(b)
    click(qv.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: qv.job_ids() == [a, c], timeout=TIMEOUT_MS)
    qtbot.keyClick(win, Qt.Key.Key_Escape)  # cancels the running job only
    qtbot.waitUntil(lambda: gen._running == c, timeout=TIMEOUT_MS)
    assert qv.job_ids() == [c] and not gen.strip.candidates
    assert np.array_equal(Compositor(doc).flatten(), before) and len(doc.layers) == n_layers
    held.release.set()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert len(gen.strip.candidates) == 1
    assert gen.strip.candidates[0].job.request.prompt == "third"
    assert qv.job_ids() == [] and qv.summary.text() == "Nothing queued"
    assert gen.panel.generate_button.text() == "Generate"


def test_accepting_an_upscale_shows_that_work_is_in_progress(qtbot, win, monkeypatch):
    """The layers are resampled on another thread while the status line and a busy bar
    say so; the result lands as one undo step."""
    from PySide6.QtWidgets import QApplication

    from canvasai.document import transform

    gen, doc = win.generation, win.document
    for i in range(3):  # a few layers, one soft-edged, as a person's document has
        layer = doc.add_layer(name=f"extra {i}")
        layer.surface.write(10 * i, 5 * i, np.full((40, 50, 4), (30 * i, 90, 200, 128), np.uint8))
    gen.panel.set_flow("upscale")
    press_generate(qtbot, gen)
    before = Compositor(doc).flatten()
    n_hist = len(doc.history.entries)
    gui = threading.get_ident()
    gate, seen = threading.Event(), []
    real = transform.resample_rgba

    def slow(*args, **kwargs):  # a big document: the resampling takes a while
        seen.append(threading.get_ident())
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(transform, "resample_rgba", slow)
    assert gen.accept(0)
    # accept() returned with the work still under way: the GUI thread is free meanwhile
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert gen.accepting and (doc.width, doc.height) == (192, 160)
    assert gen.panel.step_label.text() == "Resampling to 384×320…"
    assert gen.panel.progress.maximum() == 0  # the busy bar
    assert QApplication.overrideCursor().shape() == Qt.CursorShape.BusyCursor
    ticks = []
    QTimer.singleShot(0, lambda: ticks.append(1))  # the event loop runs meanwhile
    qtbot.waitUntil(lambda: bool(ticks), timeout=TIMEOUT_MS)
    gate.set()
    qtbot.waitUntil(lambda: not gen.accepting, timeout=TIMEOUT_MS)
    assert gui not in seen and set(seen) != set()  # the slow part never ran on the GUI thread
    assert (doc.width, doc.height) == (384, 320)
    assert QApplication.overrideCursor() is None
    assert gen.panel.step_label.text() == "Upscale accepted"
    assert len(doc.history.entries) == n_hist + 1  # one undo step
    doc.undo()
    assert (doc.width, doc.height) == (192, 160)
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_a_stroke_during_an_upscale_accept_is_kept(qtbot, win, monkeypatch):
    """Painting while the layers are resampled: the accept starts over from the new
    pixels, so the stroke is in the upscaled document."""
    from canvasai.document import transform

    gen, doc = win.generation, win.document
    gen.panel.set_flow("upscale")
    press_generate(qtbot, gen)
    gate, calls = threading.Event(), []
    real = transform.resample_rgba

    def slow(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(transform, "resample_rgba", slow)
    assert gen.accept(0)
    qtbot.waitUntil(lambda: bool(calls), timeout=TIMEOUT_MS)
    doc.write_pixels(doc.active_layer, 0, 0, np.full((16, 16, 4), (255, 0, 0, 255), np.uint8),
                     text="Paint")
    gate.set()
    qtbot.waitUntil(lambda: not gen.accepting, timeout=TIMEOUT_MS)
    assert len(calls) >= 2  # resampled again
    assert (doc.width, doc.height) == (384, 320)
    assert tuple(doc.active_layer.surface.read(Rect(4, 4, 1, 1))[0, 0]) == (255, 0, 0, 255)


def test_step_counter_shows_the_steps_asked_for(qtbot, win, tiny_env):
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 20)
    use_model(gen, tiny_env.sd1_inpaint)
    gen.panel.steps.setValue(6)  # the tiny model's PNDM fires 7 step callbacks
    gen.panel.strength.setValue(1.0)  # (below 1, diffusers runs steps x strength of them)
    texts = []
    real = gen.panel.set_status
    bars = []

    def spy(text):
        texts.append(text)
        if text.startswith("step "):
            bars.append((gen.panel.progress.value(), gen.panel.progress.maximum()))
        real(text)

    gen.panel.set_status = spy
    press_generate(qtbot, gen)
    steps = [t for t in texts if t.startswith("step ")]
    assert steps and steps[-1] == "step 6/6"
    assert all(t.endswith("/6") for t in steps), steps
    assert bars[-1] == (6, 6) and {m for _, m in bars} == {6}


def test_cancel_while_the_model_loads_shows_cancelled_at_once(qtbot, win, tiny_env, monkeypatch):
    """Esc during a (slow) model load: "Cancelled" at once; the load finishes in the
    background and the next Generate uses it."""
    from canvasai.backends.diffusion.pipelines import PipelineManager
    from canvasai.backends.router import reset

    reset()  # nothing loaded yet
    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 20)
    use_model(gen, tiny_env.sd1_inpaint)
    gen.panel.steps.setValue(2)
    gate, entered, loads = threading.Event(), threading.Event(), []
    real = PipelineManager._load_pipe

    def slow(self, info, *args, **kwargs):
        entered.set()
        assert gate.wait(60)
        loads.append(info.name)
        return real(self, info, *args, **kwargs)

    monkeypatch.setattr(PipelineManager, "_load_pipe", slow)
    try:
        qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(entered.is_set, timeout=TIMEOUT_MS)
        qtbot.keyClick(win, Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
        assert gen.panel.step_label.text() == "Cancelled"
        assert not gate.is_set() and loads == []  # it did not wait for the load
        qtbot.mouseClick(gen.panel.generate_button, Qt.MouseButton.LeftButton)
        gate.set()
        qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    finally:
        gate.set()
    assert len(gen.strip.candidates) == 1, gen.panel.message.text()
    assert len(loads) == 1  # the one load, kept for the next job


def test_generate_plans_off_the_gui_thread_on_a_snapshot_and_queues_in_order(
        qtbot, win, monkeypatch):
    """Planning composites what a job reads (a second on a big document): it runs on a pool
    thread from a copy-on-write snapshot, so strokes painted meanwhile stay out of the
    job, and jobs queue in the order Generate was pressed even when plans end out of order."""
    from canvasai.generation import flows

    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 14)
    gates = [threading.Event(), threading.Event()]
    threads, real_plan = [], flows.plan

    def slow_plan(d, flow, p, style=None):
        threads.append(threading.current_thread())
        gates[len(threads) - 1].wait(30)
        return real_plan(d, flow, p, style)

    monkeypatch.setattr(flows, "plan", slow_plan)
    before = doc.active_layer.surface.read(doc.rect).copy()
    gen.panel.prompt.setPlainText("first")
    gen.generate()
    qtbot.waitUntil(lambda: len(threads) == 1, timeout=TIMEOUT_MS)
    gen.panel.prompt.setPlainText("second")
    gen.generate()
    qtbot.waitUntil(lambda: len(threads) == 2, timeout=TIMEOUT_MS)
    assert gen.busy and not gen._job_doc  # both still being prepared
    assert threading.main_thread() not in threads
    # a stroke painted while the jobs are prepared is not in what they read
    doc.write_pixels(doc.active_layer, 80, 60, np.zeros((40, 40, 4), np.uint8))
    submitted = []
    real_submit = gen.service.submit_job
    monkeypatch.setattr(gen.service, "submit_job",
                        lambda r: submitted.append(r) or real_submit(r))
    gates[1].set()  # the second plan ends first: it waits for the first
    qtbot.wait(100)
    assert not submitted
    gates[0].set()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert [r.prompt for r in submitted] == ["first", "second"]
    ctx = gen.strip.candidates[0].job.source_rect
    assert np.array_equal(submitted[0].image, before[ctx.y:ctx.y1, ctx.x:ctx.x1])


def test_esc_while_a_job_is_prepared_drops_it_and_a_planning_error_is_shown(
        qtbot, win, monkeypatch):
    from canvasai.generation import flows

    gen, doc = win.generation, win.document
    paint_mask(doc, 96, 80, 14)
    gate, real_plan = threading.Event(), flows.plan
    monkeypatch.setattr(flows, "plan", lambda *a, **k: gate.wait(30) and real_plan(*a, **k))
    submitted = []
    monkeypatch.setattr(gen.service, "submit_job", lambda r: submitted.append(r))
    gen.generate()
    assert gen.busy and gen.panel.step_label.text() == "Preparing…"
    qtbot.keyClick(win.canvas, Qt.Key.Key_Escape)
    gate.set()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert not submitted and not gen.strip.candidates

    def broken(*a, **k):
        raise flows.FlowError("Paint a mask first.")

    monkeypatch.setattr(flows, "plan", broken)
    gen.generate()
    qtbot.waitUntil(lambda: not gen.busy, timeout=TIMEOUT_MS)
    assert gen.panel.message.text() == "Paint a mask first." and not submitted
