"""Joins the canvas and the generation service: Generate, live previews, staging, accept.

Lives on the GUI thread. It plans a job from the document (a frozen snapshot, see
`canvasai.generation.flows`), submits it as one request (the service picks the seed and
the backend runs the batch), draws each preview on the canvas over the job's region,
stages finished candidates, records them in the document's generation history, and
applies an accepted one as a single undo step. A failed or cancelled job never touches
the document.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
)

from canvasai.backends import masking
from canvasai.backends.api import GenerationResult
from canvasai.core.errors import CanvasAIError
from canvasai.core.geometry import Rect
from canvasai.document.document import Document, snapshot_document
from canvasai.generation import flows, results
from canvasai.generation.flows import FlowJob
from canvasai.generation.history import record
from canvasai.tools.outpaint_frame import OutpaintFrame
from canvasai.ui.background import run_in_pool
from canvasai.ui.generation_history import GenerationHistoryPanel
from canvasai.ui.generation_panel import GenerationPanel
from canvasai.ui.images import qimage_from_rgba
from canvasai.ui.job_queue import JobQueueView
from canvasai.ui.staging_strip import Candidate, StagingStrip

log = logging.getLogger(__name__)


class _ModelScan(QObject):
    # models [(group, label, value)], controlnets [(label, value)], a note for the person,
    # {name: (family, kind, variant, bytes on disk, GPU bytes estimate[, LoRA trigger words])}
    # of the main models and the LoRAs
    done = Signal(object, object, str, object)


class _ScanTask(QRunnable):
    """Rescans THE model registry off the GUI thread (file I/O, header reads): the panel, the
    router and the CLI all see the result, so a model found here runs at once."""

    def __init__(self, signals: _ModelScan) -> None:
        super().__init__()
        self.signals = signals

    def run(self) -> None:
        from canvasai.backends import models as registry
        from canvasai.backends.diffusion import families

        found: list[tuple[str, str, str]] = []
        kinds: dict[str, tuple[str, str, str, int, int]] = {}
        controlnets: list[tuple[str, str]] = []
        servers = _ServerList()  # ComfyUI servers' models, listed while the folders are scanned
        servers.start()
        try:
            infos = registry.rescan()
        except Exception as exc:  # noqa: BLE001 - the panel must stay usable; say why
            self.signals.done.emit([], [], f"The models folder could not be read: {exc}", {})
            return
        refused = 0
        from canvasai.core import settings

        hidden = set(settings.current().models.hidden)  # hidden in the Models window
        for info in infos:
            if str(info.path) in hidden:
                continue
            if not info.usable:
                refused += 1
                continue
            family = families.label(info.family)
            if info.kind == registry.CONTROLNET:
                controlnets.append((f"{info.name} ({info.control_type or '?'})", info.name))
            elif info.kind in registry.MAIN_KINDS:
                size = f"  ({info.size_bytes / 1e9:.1f} GB)" if info.size_bytes >= 1e8 else ""
                found.append((f"{family} · {info.kind}", info.name + size, info.name))
                kinds[info.name] = (
                    info.family, info.kind, info.variant,
                    info.size_bytes, registry.memory_estimate(info),
                )
            elif info.kind == registry.LORA:  # listed in the panel's LoRAs, not the picker
                kinds[info.name] = (info.family, info.kind, "", info.size_bytes, 0, info.triggers)
        note = (f"{refused} file(s) in the models folders cannot be used: Models → Models… "
                f"shows why and how to fix it." if refused else "")
        if servers.is_alive():  # a slow server: show the local models now, theirs when known
            servers.join(0.5)
            if servers.is_alive():
                self.signals.done.emit(list(found), list(controlnets), note, dict(kinds))
        r_found, r_kinds, r_controlnets, r_note = servers.result()
        found += r_found
        kinds.update(r_kinds)
        controlnets += r_controlnets
        note = " ".join(n for n in (note, r_note) if n)
        self.signals.done.emit(found, controlnets, note, kinds)


class _UpscaleAccept(QObject):
    """Accepting an upscale: the layers are resampled on a pool thread (from a
    copy-on-write snapshot), then installed on the GUI thread as one undo step. If the
    document changed meanwhile (a stroke, an undo) it is resampled again from the new
    state; after a few tries, here."""

    TRIES = 3

    def __init__(self, controller: GenerationController, candidate: Candidate,
                 doc: Document) -> None:
        super().__init__(controller)
        self.controller, self.candidate, self.doc = controller, candidate, doc
        self.tries = 0
        self.work_threads: list[int] = []  # where the slow part ran (for tests)
        self._scaled: Any = None

    def _job(self) -> Any:
        c = self.candidate
        if c.job.params.upscale_target == "new_document":  # touches only the new document
            def work() -> Any:
                self.work_threads.append(threading.get_ident())
                return flows.apply_result(self.doc, c.job, c.image, c.seed, c.metadata)
            return work
        from canvasai.document.transform import prepare_scale

        t = c.job.target
        if c.job.doc_size not in ((0, 0), (self.doc.width, self.doc.height)):
            raise ValueError("The canvas changed size since the job started: run it again.")
        scaled = prepare_scale(self.doc, t.w, t.h)  # cheap: shares the tiles

        def compute() -> Any:
            self.work_threads.append(threading.get_ident())
            return scaled.compute()
        return compute

    def start(self, wait: bool = False) -> None:
        self.tries += 1
        try:
            fn = self._job()
        except (CanvasAIError, ValueError) as exc:
            self._done(self, exc)
            return
        if wait or self.tries > self.TRIES:
            try:
                out = fn()
            except Exception as exc:  # noqa: BLE001
                out = exc
            self._done(self, out)
        else:
            run_in_pool(self, fn, lambda out: self._done(self, out),
                        lambda exc: self._done(self, exc))

    def _done(self, _task: Any, out: Any) -> None:
        if isinstance(out, (BaseException, Document)):
            self.controller._upscale_accept_ended(self, out)
            return
        if not out.is_current(self.doc):  # painted on / undone meanwhile: again
            self.start()
            return
        c = self.candidate
        try:
            result = flows.apply_result(self.doc, c.job, c.image, c.seed, c.metadata,
                                        scaled=out)
        except (CanvasAIError, ValueError) as exc:
            result = exc
        self.controller._upscale_accept_ended(self, result)


class _ServerList(threading.Thread):
    """Lists the configured ComfyUI servers' models (network) beside the folder scan."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="server-models")
        self.entries: tuple = ([], {}, [], "")

    def run(self) -> None:
        try:
            from canvasai.backends.remote.pool import picker_entries

            self.entries = picker_entries()
        except Exception as exc:  # noqa: BLE001 - the local models must still be listed
            self.entries = ([], {}, [], f"The servers' models could not be listed: {exc}")

    def result(self, timeout: float = 20.0) -> tuple:
        self.join(timeout)
        return self.entries


def _window_action(window: QMainWindow, text: str, key: QKeySequence,
                   slot: Callable[[], object]) -> QAction:
    """An action of `window` with a shortcut that works anywhere in it."""
    action = QAction(text, window)
    action.setShortcut(key)
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def _bounds(nonzero: np.ndarray) -> Rect | None:
    rows = np.flatnonzero(nonzero.any(axis=1))
    cols = np.flatnonzero(nonzero.any(axis=0))
    if not len(rows):
        return None
    return Rect.from_bounds(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def preview_mask(job: FlowJob) -> tuple[np.ndarray, Rect] | None:
    """`flows.preview_alpha(job)` cut to where it is not 0: (alpha, its rect inside the
    preview rectangle); None where the whole rectangle shows.

    For a painted mask only the area around it is feathered (through the one
    `masking.paste_alpha`, with a margin past its reach, so the values are the same), so
    a small mask on a large canvas costs the GUI thread little, once per job.
    """
    rect = job.preview_rect or job.target
    mask, blend = job.request.mask, job.request.blend
    if (job.flow in ("inpaint", "edit", "sketch") and mask is not None
            and mask.shape == (rect.h, rect.w)):
        marked = _bounds(mask > 0)
        if marked is None:
            return np.zeros((1, 1), np.float32), Rect(0, 0, 1, 1)
        reach = int(blend.grow_px) + int(blend.feather_px) + 2
        sub = marked.adjusted(reach, reach, reach, reach).intersect(Rect(0, 0, rect.w, rect.h))
        return masking.paste_alpha(mask[sub.slices()], blend), sub
    alpha = flows.preview_alpha(job)
    if alpha is None:
        return None
    sub = _bounds(alpha > 0) or Rect(0, 0, 1, 1)
    return alpha[sub.slices()], sub


def through_mask(rgba: np.ndarray, rect: Rect,
                 pmask: tuple[np.ndarray, Rect] | None) -> tuple[np.ndarray, Rect]:
    """The part of `rgba` (drawn over doc rect `rect`, at any size) that `pmask` lets
    through, at document resolution with its alpha multiplied by the mask, and where to
    draw it. Where the mask is exactly 0 nothing is drawn, so the canvas shows there
    exactly as it is (strokes painted during the job included)."""
    if pmask is None:
        return rgba, rect
    alpha, sub = pmask
    frame = np.asarray(rgba, dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 3:
        frame = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
    fh, fw = frame.shape[:2]
    if (fh, fw) == (rect.h, rect.w):
        part = frame[sub.slices()]
    else:  # a smaller preview: the matching part, scaled up to document pixels
        sx, sy = fw / rect.w, fh / rect.h
        x0, y0 = int(sub.x * sx), int(sub.y * sy)
        x1 = max(x0 + 1, min(fw, math.ceil((sub.x + sub.w) * sx - 1e-9)))
        y1 = max(y0 + 1, min(fh, math.ceil((sub.y + sub.h) * sy - 1e-9)))
        img = qimage_from_rgba(frame[y0:y1, x0:x1]).scaled(
            sub.w, sub.h, Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        img = img.convertToFormat(QImage.Format.Format_RGBA8888)
        rows = np.frombuffer(img.constBits(), np.uint8, img.bytesPerLine() * sub.h)
        part = rows.reshape(sub.h, img.bytesPerLine())[:, : sub.w * 4].reshape(sub.h, sub.w, 4)
    out = np.array(part, dtype=np.uint8, copy=True)
    out[..., 3] = (out[..., 3] * alpha + 0.5).astype(np.uint8)
    return out, sub.translated(rect.x, rect.y)


def shown_steps(step: int, total: int, items: int, asked: int) -> tuple[int, int, int]:
    """(step within the item, steps per item, item number) as the person counts them.

    `total` spans the batch. A scheduler that reports one step more than was asked for
    (PNDM: N + 1 callbacks) is shown against the steps asked for, never "1/61" for 60.
    """
    items = max(1, items)
    step = max(1, step)
    per = total // items if total % items == 0 else max(1, total)
    if total % items:
        return min(step, per), per, 1
    item = min(items, (step - 1) // max(per, 1) + 1)
    local = step - (item - 1) * per
    if asked > 0 and per == asked + 1:
        return min(local, asked), asked, item
    return local, per, item


@dataclass(eq=False)
class _Planning:
    """A job being planned on a pool thread (see `GenerationController._plan`)."""

    doc: Document
    job: FlowJob | None = None
    error: BaseException | None = None
    done: bool = False
    cancelled: bool = False


class GenerationController(QObject):
    """Owns the generation panel, staging strip and history panel of a main window."""

    def __init__(self, window: QMainWindow, service: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self._service = service
        self.panel = GenerationPanel()
        self.strip = StagingStrip()
        self.history_panel = GenerationHistoryPanel()
        self.frame = OutpaintFrame()
        self._jobs: dict[int, FlowJob] = {}
        self._job_doc: dict[int, Document] = {}
        self._alpha: dict[int, Any] = {}  # job id -> where its result shows (None: everywhere)
        self._batch: list[int] = []  # this window's pending jobs: running first, then queued
        self._planning: list[_Planning] = []  # jobs being prepared, in the order pressed
        self._running: int | None = None
        #: each document's last job (Re-run / New seed repeat the shown document's own)
        self._last_jobs: weakref.WeakKeyDictionary[Document, FlowJob] = weakref.WeakKeyDictionary()
        self._accepting: _UpscaleAccept | None = None
        self._shown: int | None = None
        self.first_preview_at: float | None = None  # for measurements
        self.generate_pressed_at: float | None = None

        self.panel_dock = window.add_dock("generation", "Generate", self.panel,
                                     Qt.DockWidgetArea.RightDockWidgetArea)
        self.strip_dock = window.add_dock("staging", "Results", self.strip,
                                     Qt.DockWidgetArea.BottomDockWidgetArea)
        self.queue_view = JobQueueView()
        self.queue_dock = window.add_dock("queue", "Queue", self.queue_view,
                                          Qt.DockWidgetArea.BottomDockWidgetArea)
        window.splitDockWidget(self.strip_dock, self.queue_dock, Qt.Orientation.Horizontal)
        self.queue_view.cancel_requested.connect(self.cancel_job)
        self.queue_view.move_requested.connect(self.move_job)
        self.history_dock = window.add_dock("generation_history", "Generation history",
                                       self.history_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabifyDockWidget(self.panel_dock, self.history_dock)
        self.panel_dock.raise_()
        self._arrange_docks()
        QTimer.singleShot(0, self._arrange_docks)  # again once the window has its real size

        self.panel.generate_clicked.connect(self.generate)
        self.panel.cancel_clicked.connect(self.cancel)
        self.panel.margins_changed.connect(lambda m: self.frame.set(*m))
        self.panel.mark_sketch_clicked.connect(self.mark_active_as_sketch)
        self.panel.refresh_models_clicked.connect(self.refresh_models)
        self.panel.task.currentIndexChanged.connect(lambda _i: self.refresh_reference_layers())
        from canvasai.ui.models_window import PickerMemory

        self.picker_memory = PickerMemory(self.panel)  # last model per task, "Loading NAME…"
        self.frame.on_change.append(self._frame_changed)
        self.strip.selected.connect(self.show_candidate)
        self.strip.accept_requested.connect(self.accept)
        self.strip.accept_all_requested.connect(self.accept_all)
        self.strip.discard_requested.connect(self.discard)
        self.strip.rerun_requested.connect(self.rerun)
        self.strip.compare_requested.connect(self.compare)
        self._comparing = False
        self.history_panel.reuse_requested.connect(self.panel.set_params)

        self.cancel_action = _window_action(window, "Cancel generation",
                                            QKeySequence(Qt.Key.Key_Escape), self.cancel)
        self.cancel_action.setEnabled(False)
        self.generate_action = _window_action(window, "Generate", QKeySequence("Ctrl+Return"),
                                              self.generate)
        # hold C: compare. A shortcut sees the press (text inputs keep their C: they claim
        # it as typing); the release is watched only while C is held. Not an app-wide
        # event filter: that ran Python for every Qt event (4,000 in the editing
        # benchmark's 3 idle seconds), each one taking the GIL, so waiting behind a load.
        self.compare_action = _window_action(window, "Compare with the canvas (hold)",
                                             QKeySequence(Qt.Key.Key_C),
                                             self._compare_key_pressed)
        self.compare_action.setAutoRepeat(False)

        self._scan_signals = _ModelScan()
        self._scan_signals.done.connect(self._models_scanned)
        self.refresh_models()

    # -- plumbing -------------------------------------------------------------------------
    def _arrange_docks(self) -> None:
        """Give the generation panel most of the right column and keep the strip short."""
        w = self.window
        layers = w.docks.get("layers")
        if layers is not None:
            w.resizeDocks([layers, self.panel_dock], [220, 700], Qt.Orientation.Vertical)
            w.resizeDocks([self.panel_dock], [340], Qt.Orientation.Horizontal)
        self.strip.setMaximumHeight(190)
        self.queue_view.setMaximumHeight(190)
        w.resizeDocks([self.strip_dock], [180], Qt.Orientation.Vertical)
        w.resizeDocks([self.strip_dock, self.queue_dock], [700, 300], Qt.Orientation.Horizontal)

    @property
    def service(self) -> Any:
        """The generation service, started on first use (its thread, not torch: that loads lazily)."""
        if self._service is None:
            from canvasai.generation.service import GenerationService

            self._service = GenerationService(parent=None)
        if not getattr(self, "_wired", False):
            s = self._service
            s.started.connect(self._on_started)
            s.progress.connect(self._on_progress)
            s.preview.connect(self._on_preview)
            s.finished.connect(self._on_finished)
            s.failed.connect(self._on_failed)
            s.cancelled.connect(self._on_cancelled)
            s.note.connect(self._on_note)
            self._wired = True
        return self._service

    @property
    def busy(self) -> bool:
        """A job of this window is being prepared, running or waiting."""
        return bool(self._batch or self._planning)

    @property
    def canvas(self) -> Any:
        return self.window.canvas

    def document(self) -> Document | None:
        return getattr(self.window, "document", None)

    def document_replaced(self, doc: Document | None) -> None:
        """The window shows another document: the strip shows that document's results."""
        self.strip.set_candidates([
            Candidate(e["image"], int(e.get("seed", 0)), job,
                      dict(e.get("metadata") or {}), None, False, e)
            for e, job in results.usable(doc)
        ])
        self._shown = None
        self.canvas.set_preview(None)
        self.frame.clear()
        ctx = getattr(self.window, "tool_context", None)
        if ctx is not None:
            ctx.frame = self.frame
        self.history_panel.set_document(doc)
        self.refresh_reference_layers()

    def refresh_reference_layers(self) -> None:
        """The document's layers as Edit's reference choices (names may have changed)."""
        doc = self.document()
        layers = [] if doc is None else [(la.id, la.name) for la in reversed(doc.layers)]
        self.panel.set_reference_layers(layers)

    def refresh_models(self) -> None:
        QThreadPool.globalInstance().start(_ScanTask(self._scan_signals))

    def _models_scanned(self, models: list, controlnets: list, note: str, kinds: dict) -> None:
        with self.picker_memory.filling():
            self.panel.set_models(models, controlnets)
            self.panel.set_model_info(kinds)
        self.picker_memory.restore()
        if note:
            self.panel.show_note(note)
        self._warm_up_if_needed(kinds)

    def _warm_up_if_needed(self, kinds: dict) -> None:
        """A local diffusion model is installed: let the worker import torch/diffusers
        now, while the person looks at the window, instead of in the first job (once)."""
        from canvasai.backends.models import MAIN_KINDS

        if getattr(self, "_warmed", False):
            return
        local = [n for n, v in kinds.items()
                 if v[1] in MAIN_KINDS and not n.startswith("comfyui:")]
        if local:
            self._warmed = True
            self.service.warm_up()

    def _frame_changed(self, margins: tuple[int, int, int, int]) -> None:
        doc = self.document()
        if self.panel.margins() != margins:
            self.panel.set_margins(margins)
        if doc is not None:
            self.canvas.set_frame_rect(self.frame.rect(doc.rect))

    def mark_active_as_sketch(self) -> None:
        doc = self.document()
        if doc is None or doc.active_layer is None:
            return
        for layer in doc.layers:
            if layer.is_sketch and layer is not doc.active_layer:
                doc.set_layer_properties(layer, is_sketch=False)
        doc.set_layer_properties(doc.active_layer, is_sketch=True)
        self.panel.show_note(f"“{doc.active_layer.name}” is the sketch for Sketch → Render.")

    # -- generate / cancel ------------------------------------------------------------------
    def generate(self) -> None:
        """Plan a job from the document as it is now and queue it (after any running one)."""
        doc = self.document()
        if doc is None:
            self.panel.show_error("Open or create a document first.")
            return
        flow, params = self.panel.flow(), self.panel.params()
        self._plan(doc, lambda snap: flows.plan(snap, flow, params))

    def _plan(self, doc: Document, make_job: Callable[[Document], FlowJob]) -> None:
        """Run `make_job` on a copy-on-write snapshot of `doc` on a pool thread, then queue
        the job. Planning composites the pixels a job reads (about 1 s on the GUI thread
        for a 2x upscale of a 2048² document of 10 layers); the snapshot costs O(tiles).
        Jobs are queued in the order Generate was pressed, whichever plan ends first."""
        self.generate_pressed_at = time.perf_counter()
        self.first_preview_at = None
        snap = snapshot_document(doc, metadata=False)
        entry = _Planning(doc)
        self._planning.append(entry)
        if not self._batch and len(self._planning) == 1:
            self.panel.set_busy(True)
            self.panel.set_status("Preparing…")
        self.cancel_action.setEnabled(True)
        run_in_pool(self, lambda: make_job(snap), lambda job: self._planned(entry, job, None),
                    lambda exc: self._planned(entry, None, exc))

    def _planned(self, entry: _Planning, job: FlowJob | None, error: BaseException | None
                 ) -> None:
        entry.job, entry.error, entry.done = job, error, True
        while self._planning and self._planning[0].done:
            e = self._planning.pop(0)
            if e.cancelled:
                continue
            if e.error is not None or e.job is None:
                if not isinstance(e.error, (CanvasAIError, ValueError)):
                    log.error("planning a job failed", exc_info=e.error)
                self.panel.show_error(str(e.error) or "Preparing the job failed.")
                continue
            self._submit(e.doc, e.job)
        if not self._batch and not self._planning:
            self._set_idle()

    def _set_idle(self) -> None:
        self.panel.set_busy(False)
        self.cancel_action.setEnabled(False)

    def _submit(self, doc: Document, job: FlowJob) -> None:
        # The service chooses the seed (if the panel left it open): keep the job as it runs.
        job_id, request = self.service.submit_job(job.request)
        job = replace(job, request=request, params=replace(job.params, seed=request.seed))
        self._last_jobs[doc] = job
        self._jobs[job_id] = job
        self._job_doc[job_id] = doc
        waiting = bool(self._batch)
        self._batch.append(job_id)
        self.panel.note_seed(int(job.request.seed))
        if not waiting:  # otherwise the Queue panel shows it waiting
            self.panel.set_busy(True)
            self.panel.set_status("Queued…")
        self.cancel_action.setEnabled(True)
        self._refresh_queue()

    def cancel(self) -> None:
        """Esc: cancel the running job (the queued ones stay queued), or, before the first
        job is queued, the jobs still being prepared."""
        if not self.busy:
            return
        if not self._batch:
            for entry in self._planning:
                entry.cancelled = True
            self.panel.set_status("Cancelled")
            return
        job_id = self._running if self._running is not None else self._batch[0]
        self.service.cancel(job_id)
        self.panel.set_status("Cancelling…")

    def cancel_job(self, job_id: int) -> None:
        """Cancel one job of the queue, running or waiting."""
        if job_id in self._batch:
            self.service.cancel(job_id)
            if job_id == self._running:
                self.panel.set_status("Cancelling…")

    def move_job(self, job_id: int, delta: int) -> None:
        """Run a waiting job earlier (-1) or later (+1)."""
        if job_id in self._batch and self.service.move(job_id, delta):
            order = self.service.pending_jobs()
            self._batch.sort(key=lambda j: order.index(j) if j in order else -1)
            self._refresh_queue()
            self.queue_view.select_job(job_id)

    def _refresh_queue(self) -> None:
        entries = []
        for job_id in self._batch:
            job = self._jobs.get(job_id)
            if job is None:
                continue
            prompt = job.request.prompt.strip().replace("\n", " ")
            prompt = prompt[:32] + "…" if len(prompt) > 33 else prompt
            n = job.request.batch_size
            what = " · ".join(x for x in (f"“{prompt}”" if prompt else "", job.label,
                                          f"{n} images" if n > 1 else "",
                                          f"seed {job.request.seed}") if x)
            doc = self._job_doc.get(job_id)
            if doc is not None and doc is not self.document():
                what += " (another document)"
            entries.append((job_id, what))
        self.queue_view.set_jobs(entries, self._running)
        if self.queue_dock.isHidden() and len(entries) > 1:
            self.queue_dock.show()  # a queue is forming: let the person see it

    def rerun(self, same_seed: bool) -> None:
        """Re-plan the shown document's last job from the document as it is now, with the
        same settings; "New seed" (not `same_seed`) makes as many new candidates as the
        batch size the panel shows now."""
        doc = self.document()
        job = self._last_jobs.get(doc) if doc is not None else None
        if job is None or doc is None:
            return
        seed = job.request.seed if same_seed else None
        batch = self.panel.params().batch_size

        def make(snap: Document) -> FlowJob:
            fresh = flows.plan(snap, job.flow, job.params)
            return replace(fresh, request=replace(fresh.request, seed=seed, batch_size=batch),
                           params=replace(fresh.params, batch_size=batch))

        self._plan(doc, make)

    # -- service messages -------------------------------------------------------------------
    def _finish_one(self, job_id: int) -> None:
        if job_id in self._batch:
            self._batch.remove(job_id)
        if self._running == job_id:
            self._running = None
        self._jobs.pop(job_id, None)
        self._job_doc.pop(job_id, None)
        self._alpha.pop(job_id, None)
        if self._shown is None:
            self.canvas.set_preview(None)  # the ended job's last preview
        if not self._batch and not self._planning:
            self._set_idle()
        self._refresh_queue()

    def _on_started(self, job_id: int) -> None:
        if job_id in self._batch:
            self._running = job_id
            self._refresh_queue()
            text = self.picker_memory.starting_text(self._jobs.get(job_id))
            if text.startswith("Loading"):
                self.panel.progress.setRange(0, 0)  # busy until the first step reports
            self.panel.set_status(text)

    def _on_progress(self, job_id: int, step: int, total: int) -> None:
        if job_id not in self._batch:
            return
        job = self._jobs.get(job_id)
        n = max(1, job.request.batch_size if job is not None else 1)
        asked = job.request.steps if job is not None else 0
        step_shown, per_item, item = shown_steps(step, total, n, asked)
        p = self.panel
        p.progress.setRange(0, max(1, per_item * n))
        p.progress.setValue((item - 1) * per_item + step_shown)
        prefix = f"{item}/{n} · " if n > 1 else ""
        p.set_status(f"{prefix}step {step_shown}/{per_item}")

    def _on_preview(self, job_id: int, step: int, rgba: Any) -> None:
        job = self._jobs.get(job_id)
        if job is None or job_id not in self._batch or self._job_doc.get(job_id) is not self.document():
            return
        if self.first_preview_at is None:
            self.first_preview_at = time.perf_counter()
        self._shown = None
        rect = job.preview_rect or job.target
        if job_id not in self._alpha:
            self._alpha[job_id] = preview_mask(job)
        self.canvas.set_preview(*through_mask(rgba, rect, self._alpha[job_id]))

    def _on_finished(self, job_id: int, result: GenerationResult) -> None:
        if job_id not in self._batch:
            return  # not this controller's job (a live painting frame)
        job = self._jobs.pop(job_id, None)
        doc = self._job_doc.get(job_id)
        if job is not None and doc is not None:
            # Every result is kept with its document (shown or not) until accepted/discarded.
            meta = dict(result.metadata)
            current = doc is self.document()
            alpha = self._alpha[job_id] if job_id in self._alpha else preview_mask(job)
            first = None
            for image, seed in zip(result.images, result.seeds, strict=False):
                entry = results.entry_for(job, image, int(seed), meta)
                results.add(doc, entry)
                record(doc, flows.generation_record(job, int(seed), meta), image)
                if current:
                    index = self.strip.add(Candidate(image, int(seed), job, meta, alpha,
                                                     True, entry))
                    first = index if first is None else first
            if first is not None:
                self.strip.select(first)
                self.show_candidate(first)
            if current:
                self.history_panel.refresh()
            note = meta.get("note")
            if not current:  # kept with its own document: say which tab has it
                name_of = getattr(self.window, "document_name", None)
                name = name_of(doc) if name_of is not None else "another document"
                n = len(result.images)
                kept = (f"{n} new result{'s' if n != 1 else ''} kept with “{name}”: "
                        f"{'they show' if n != 1 else 'it shows'} in its tab.")
                note = f"{note}\n{kept}" if note else kept
            if note:
                self.panel.show_note(str(note))
        self._finish_one(job_id)
        if not self.busy:
            n = len(result.images) if job is not None else 0
            if doc is not None and doc is not self.document():  # the note says which
                self.panel.set_status(f"Done: {n} in another tab")
            else:
                self.panel.set_status(f"Done: {n} new result{'s' if n != 1 else ''}")

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id not in self._batch:
            return  # not this controller's job (a live painting frame)
        self._jobs.pop(job_id, None)
        self.panel.show_error(message)
        self._finish_one(job_id)
        if not self.busy:
            self.panel.set_status("Failed")

    def _on_cancelled(self, job_id: int) -> None:
        if job_id not in self._batch:
            return  # not this controller's job (a live painting frame)
        self._jobs.pop(job_id, None)
        self._finish_one(job_id)
        if not self.busy:
            self.panel.set_status("Cancelled")

    def _on_note(self, job_id: int, message: str) -> None:
        if job_id in self._batch:
            self.panel.show_note(message)

    # -- staging ------------------------------------------------------------------------------
    def show_candidate(self, index: int) -> None:
        if not 0 <= index < len(self.strip.candidates):
            return
        c = self.strip.candidates[index]
        rect = c.job.preview_rect or c.job.target
        if c.job.flow == "upscale":
            rect = c.job.source_rect
        if not c.alpha_known:
            c.alpha, c.alpha_known = preview_mask(c.job), True
        self._shown = index
        if not self._comparing:
            self.canvas.set_preview(*through_mask(c.image, rect, c.alpha))

    def compare(self, hold: bool) -> None:
        """While held, the canvas shows without the candidate."""
        self._comparing = bool(hold)
        if hold:
            if self._shown is not None:
                self.canvas.set_preview(None)
        elif self._shown is not None:
            self.show_candidate(self._shown)

    def _compare_key_pressed(self) -> None:
        if self._shown is None or self._comparing or not self.window.isActiveWindow():
            return
        self.compare(True)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)  # for the release, wherever the focus went

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """Installed only while C is held: its release (or the window losing the focus)
        ends the comparison."""
        t = event.type()
        released = (t == QEvent.Type.KeyRelease and isinstance(event, QKeyEvent)
                    and event.key() == Qt.Key.Key_C and not event.isAutoRepeat())
        if released or t == QEvent.Type.ApplicationDeactivate:
            app = QApplication.instance()
            if app is not None:
                app.removeEventFilter(self)
            if self._comparing:
                self.compare(False)
            return released
        return False

    def accept(self, index: int, *, wait: bool = False) -> bool:
        """Accept candidate `index` as one undo step. An upscale resamples every layer of
        the document: that runs on a pool thread (`wait`: here) while the status line and
        a busy bar say so, and lands when done; True when it was applied or started."""
        doc = self.document()
        if doc is None or not 0 <= index < len(self.strip.candidates):
            return False
        c = self.strip.candidates[index]
        if c.job.flow == "upscale":
            if self._accepting is not None:
                self.panel.show_note("Still accepting the previous upscale: one moment.")
                return False
            self._accepting = _UpscaleAccept(self, c, doc)
            self.panel.set_status(flows.upscale_accept_status(c.job))
            self.panel.progress.setRange(0, 0)  # busy
            QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
            self._accepting.start(wait)
            return True
        try:
            result = flows.apply_result(doc, c.job, c.image, c.seed, c.metadata)
        except (CanvasAIError, ValueError) as exc:
            self.panel.show_error(str(exc))
            return False
        self._accepted(c, doc, result)
        return True

    @property
    def accepting(self) -> bool:
        """An upscale is being accepted (its layers resampled) in the background."""
        return self._accepting is not None

    def _accepted(self, c: Candidate, doc: Document, result: Any) -> None:
        if c.entry is not None:
            results.remove(doc, c.entry)
        index = next((i for i, x in enumerate(self.strip.candidates) if x is c), None)
        if index is not None:
            self.strip.remove(index)
        self._shown = None
        self.canvas.set_preview(None)
        if isinstance(result, Document):  # a new document: a tab of its own where there are tabs
            getattr(self.window, "add_document", self.window.set_document)(result)
        else:
            if c.job.flow == "outpaint":
                self.frame.clear()
            if self.strip.candidates:
                self.show_candidate(self.strip.current_index())

    def _upscale_accept_ended(self, task: _UpscaleAccept, result: Any) -> None:
        if task is not self._accepting:
            return
        self._accepting = None
        QApplication.restoreOverrideCursor()
        self.panel.progress.setRange(0, 1)
        self.panel.progress.setValue(0)
        if isinstance(result, BaseException):
            self.panel.show_error(str(result) if isinstance(result, (CanvasAIError, ValueError))
                                  else f"The upscale could not be accepted: {result}")
            self.panel.set_status("Upscale not accepted")
            return
        self._accepted(task.candidate, task.doc, result)
        self.panel.set_status("Upscale accepted")

    def accept_all(self) -> None:
        doc = self.document()
        if doc is None:
            return
        with doc.history.macro("Accept all candidates"):
            while self.strip.candidates:
                if not self.accept(0, wait=True):
                    break

    def discard(self, index: int) -> None:
        if not 0 <= index < len(self.strip.candidates):
            return
        c = self.strip.candidates[index]
        doc = self.document()
        if c.entry is not None and doc is not None:
            results.remove(doc, c.entry)
        self.strip.remove(index)
        self._shown = None
        self.canvas.set_preview(None)
        if self.strip.candidates:
            self.show_candidate(self.strip.current_index())

    def has_jobs(self, doc: Document) -> bool:
        """Whether a job of `doc` is being prepared, running or waiting."""
        return (any(d is doc for d in self._job_doc.values())
                or any(e.doc is doc and not e.cancelled for e in self._planning))

    def document_closed(self, doc: Document) -> None:
        """`doc`'s tab closed: its jobs, running or waiting, are cancelled (the jobs of the
        other open documents go on)."""
        for entry in self._planning:
            if entry.doc is doc:
                entry.cancelled = True
        for job_id, d in list(self._job_doc.items()):
            if d is doc:
                self.cancel_job(job_id)

    def shutdown(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        if self._service is not None:
            self._service.cancel_all()
            self._service.shutdown(3000)

