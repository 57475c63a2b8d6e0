"""Live painting in the window: the Live toggle, the live overlay, Apply.

While Live is on (the toggle in the Generate panel's Live bar, Tools ▸ Live painting,
Ctrl+L), every stroke end that touches the live area, and every change of the prompt,
model, style, live strength, seed, layers (a control layer's pixels or role, visibility)
or of the live area itself (debounced), plans a live job (`canvasai.generation.live`,
on a pool thread from a copy-on-write snapshot: one plan at a time, the changes made
meanwhile go into the next) and hands it to `GenerationService.submit_live`, which drops
the older live jobs. Only
the newest job's previews and frame are shown (over the live area, with the opacity and
the Show box of the Live bar); results of superseded jobs are ignored. The latency of
the last frame (from the stroke end or change to the frame on the canvas) is shown in
the Live bar and the status bar.

Apply re-runs the newest frame's request with ``live=False`` through the service's usual
`submit_job` path (same seed, steps and size, so the same picture, decoded by the full
autoencoder where the live frame used a tiny one) and pastes it through
`flows.apply_result` as one undo step: *Apply* replaces the area's pixels in the active
layer (nothing outside the area changes), *As layer* puts it on a new layer over the
area. The live jobs stop while it runs and start again with the next change.

Live stops when it is turned off (every live job is cancelled at once and the overlay
goes) and when another document is shown (each document its own: the old one's live
jobs are cancelled).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from canvasai.core.errors import CanvasAIError
from canvasai.core.geometry import Rect
from canvasai.document.document import Document
from canvasai.generation import flows, live
from canvasai.generation.flows import FlowJob
from canvasai.ui.background import run_in_pool

log = logging.getLogger(__name__)

SHORTCUT = "Ctrl+L"
STROKE_DELAY_MS = 0  # a stroke end with no live job in flight: at once
STREAM_MS = 150  # a stroke end while one is in flight: once the strokes pause this long
DEBOUNCE_MS = 220  # typing, spin boxes, undo, layer changes: after a short pause
GUIDE_ROLES = ("control", "reference", "region")
OFF_HINT = (f"Live ({SHORTCUT}): the selection, the pinned area or the whole canvas "
            "regenerates as you paint")
AREA_NAMES = {"frame": "pinned area", "selection": "selection", "canvas": "whole canvas"}


def _rgba(image: Any) -> np.ndarray:
    img = np.asarray(image, dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(img)


class LiveBar(QWidget):
    """The Live controls in the Generate panel: the toggle and the live strength always;
    the overlay's Show box and opacity, Pin area, Apply and As layer while Live is on."""

    def __init__(self, action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveBar")
        # the app's style sheet marks only checked tool buttons: Live and Pin area too
        self.setStyleSheet("QPushButton:checked { background: #3d6fb4; "
                           "border-color: #5a8ad0; color: white; }")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 2, 0, 2)
        col.setSpacing(3)
        row = QHBoxLayout()
        # push buttons: the style sheet draws tool buttons flat, like labels
        self.toggle = QPushButton("Live")
        self.toggle.setCheckable(True)
        self.toggle.setObjectName("liveToggle")
        self.toggle.setToolTip(action.toolTip())
        self.toggle.clicked.connect(lambda on: action.setChecked(bool(on)))  # the action rules
        action.toggled.connect(self.toggle.setChecked)
        row.addWidget(self.toggle)
        row.addWidget(QLabel("Strength"))
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setValue(0.5)
        self.strength.setToolTip("How much each live frame may change the live area "
                                 "(starts at the style's live strength)")
        row.addWidget(self.strength)
        self.pin = QPushButton("Pin area")
        self.pin.setCheckable(True)
        self.pin.setToolTip("Keep the live area where it is now (the selection's bounds, or "
                            "the whole canvas), so you can deselect and paint on")
        row.addWidget(self.pin)
        row.addStretch(1)
        col.addLayout(row)

        self.details = QWidget()
        more = QHBoxLayout(self.details)
        more.setContentsMargins(0, 0, 0, 0)
        self.show_box = QCheckBox("Show")
        self.show_box.setChecked(True)
        self.show_box.setToolTip("Show the live frame over the canvas (untick to compare)")
        more.addWidget(self.show_box)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(100)
        self.opacity.setToolTip("Opacity of the live frame over the canvas")
        self.opacity.setMinimumWidth(50)
        more.addWidget(self.opacity, 1)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Put the live frame into the active layer over the live "
                                     "area (one undo step)")
        self.layer_button = QPushButton("As layer")
        self.layer_button.setToolTip("Put the live frame on a new layer over the live area")
        more.addWidget(self.apply_button)
        more.addWidget(self.layer_button)
        col.addWidget(self.details)
        self.info = QLabel("")
        self.info.setObjectName("liveInfo")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: #9aa4b2;")
        col.addWidget(self.info)
        self.set_on(False)

    def set_on(self, on: bool, why: str = "") -> None:
        self.details.setVisible(on)
        self.set_can_apply(False)
        if not on:
            self.info.setText(why or OFF_HINT)

    def set_can_apply(self, can: bool) -> None:
        self.apply_button.setEnabled(can)
        self.layer_button.setEnabled(can)


class LiveMode(QObject):
    """Live painting for a main window and its generation controller."""

    def __init__(self, window: Any, controller: Any) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.action = QAction("&Live painting", window)
        self.action.setObjectName("live")
        self.action.setIconText("Live")
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.action.setToolTip(f"Live painting: the live area regenerates as you paint "
                               f"({SHORTCUT})")
        menu = getattr(window, "menu_tools", None)
        if menu is not None:
            menu.addSeparator()
            menu.addAction(self.action)
        window.addAction(self.action)
        self.bar = LiveBar(self.action)
        self.action.toggled.connect(self._toggled)  # after the bar's button follows it
        panel = controller.panel
        panel.layout().insertWidget(1, self.bar)  # under the settings, over the messages
        self.status_label = QLabel("")
        self.status_label.setObjectName("liveStatus")
        self.status_label.setVisible(False)
        window.statusBar().addPermanentWidget(self.status_label)

        self._doc: Document | None = None  # the document Live is on for
        self._jobs: dict[int, tuple[FlowJob, float]] = {}  # live job -> (job, trigger time)
        self._latest: int | None = None  # the newest live job (the only one shown)
        self.frame: tuple[FlowJob, np.ndarray] | None = None  # the newest frame shown
        self._frame_result: Any = None  # its GenerationResult
        self.applied_directly = 0  # frames applied as shown (decoded by the full VAE)
        self._apply: tuple[int, FlowJob, bool, Document] | None = None
        self._applying = False  # pasting an applied result: its change starts no job
        self._dirty = Rect(0, 0, 0, 0)  # pixels changed since the last live job
        self._changed = False  # settings or layers changed since the last live job
        self._trigger_at: float | None = None
        self._planning = False  # a live job is being planned on a pool thread
        self._replan = False  # ... and something changed meanwhile: plan again after it
        self._plans = 0  # bumped when Live stops: plans of an earlier session are dropped
        self._area: Rect | None = None
        self._wired = False
        self.jobs_submitted = 0
        self.last_latency: float | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

        b = self.bar
        b.show_box.toggled.connect(window.canvas.set_live_visible)
        b.opacity.valueChanged.connect(lambda v: window.canvas.set_live_opacity(v / 100))
        b.apply_button.clicked.connect(lambda: self.apply(new_layer=False))
        b.layer_button.clicked.connect(lambda: self.apply(new_layer=True))
        b.pin.toggled.connect(self._pin_toggled)
        b.strength.valueChanged.connect(self._settings_changed)
        p = panel
        for signal in (p.prompt.textChanged, p.negative.textChanged,
                       p.model.currentIndexChanged, p.style.currentIndexChanged,
                       p.seed_lock.toggled, p.seed.valueChanged):
            signal.connect(self._settings_changed)
        p.style.currentIndexChanged.connect(self._style_changed)
        window.canvas.stroke_finished.connect(self._stroke_finished)
        window.document_changed.connect(self.document_replaced)

    # -- on / off ----------------------------------------------------------------------------
    @property
    def on(self) -> bool:
        return self._doc is not None

    def set_on(self, on: bool) -> None:
        self.action.setChecked(bool(on))

    def _toggled(self, on: bool) -> None:
        if on and self._doc is None:
            if not self._start():
                self.action.setChecked(False)
        elif not on and self._doc is not None:
            self._stop("Live off")

    def _start(self) -> bool:
        doc = self.window.document
        panel = self.controller.panel
        if doc is None:
            panel.show_error("Open or create a document first.")
            return False
        try:
            live.check_live(doc, panel.params())
        except (CanvasAIError, ValueError) as exc:
            panel.show_error(str(exc))
            return False
        self._doc = doc
        self._wire_service()
        doc.pixels_changed.connect(self._on_pixels)
        doc.layers_changed.connect(self._settings_changed)
        doc.selection_changed.connect(self._on_selection)
        doc.size_changed.connect(self._settings_changed)
        self.bar.set_on(True)
        self._sync_pin()
        self.status_label.setVisible(True)
        self.status_label.setText("Live")
        canvas = self.window.canvas
        canvas.set_live_visible(self.bar.show_box.isChecked())
        canvas.set_live_opacity(self.bar.opacity.value() / 100)
        self._trigger_at = time.perf_counter()
        self._changed = True
        self._fire()
        return True

    def _stop(self, why: str) -> None:
        doc, self._doc = self._doc, None
        if doc is not None:
            doc.pixels_changed.disconnect(self._on_pixels)
            doc.layers_changed.disconnect(self._settings_changed)
            doc.selection_changed.disconnect(self._on_selection)
            doc.size_changed.disconnect(self._settings_changed)
        self._timer.stop()
        self._plans += 1  # a plan still being made is for a session that is over
        self._planning = self._replan = False
        self._cancel_live()
        self._jobs.clear()
        self._latest = None
        self.frame = None
        self._dirty = Rect(0, 0, 0, 0)
        self._changed = False
        self._area = None
        canvas = self.window.canvas
        canvas.set_live_overlay(None)
        canvas.set_live_area(None)
        self.bar.set_on(False, "" if why == "Live off" else why)
        self.status_label.setVisible(False)

    def document_replaced(self, doc: Document | None) -> None:
        """Another document is shown: live painting stops for the old one."""
        if self._doc is not None and doc is not self._doc:
            self._stop("Live stopped: another document is shown")
            self.action.setChecked(False)
        self._sync_pin()

    # -- the service -------------------------------------------------------------------------
    @property
    def service(self) -> Any:
        return self.controller.service

    def _wire_service(self) -> None:
        if self._wired:
            return
        s = self.service
        s.preview.connect(self._on_preview)
        s.finished.connect(self._on_finished)
        s.failed.connect(self._on_failed)
        s.cancelled.connect(self._on_cancelled)
        self._wired = True

    def _submit_live(self, request: Any) -> int:
        s = self.service
        submit = getattr(s, "submit_live", None)
        if submit is not None:
            return int(submit(request))
        for old in list(self._jobs):  # a service without live jobs: drop the older ones here
            s.cancel(old)
        return int(s.submit(request))

    def _cancel_live(self) -> None:
        if not self._wired:
            return
        s = self.service
        cancel = getattr(s, "cancel_live", None)
        if cancel is not None:
            cancel()
        else:
            for old in list(self._jobs):
                s.cancel(old)

    # -- what starts a live job ---------------------------------------------------------------
    def _on_pixels(self, _layer: object, rect: Rect) -> None:
        if self._applying:
            return
        self._dirty = self._dirty.union(rect)
        if not self.window.canvas.stroking:  # undo, fill, a layer's pixels set in code
            self._trigger_at = time.perf_counter()
            self._timer.start(DEBOUNCE_MS)

    def _stroke_finished(self) -> None:
        if self._doc is None or self._dirty.is_empty():
            return
        if live.touches_live_area(self._doc, self._dirty):
            self.window.canvas.set_live_overlay(None)  # the frame no longer matches
            self._trigger_at = time.perf_counter()
            # Nothing in flight: at once. Otherwise the strokes of a quick stream are
            # merged: the next job goes when they pause (and drops the running one, whose
            # input is stale by then) or when the running one's frame lands, whichever
            # comes first, so a stream never starts a job per stroke only to drop it.
            self._timer.start(STREAM_MS if self._in_flight() else STROKE_DELAY_MS)
        else:
            self._dirty = Rect(0, 0, 0, 0)  # outside the live area: nothing to redo

    def _in_flight(self) -> bool:
        """The newest live job is waiting or running."""
        return self._latest is not None and self._latest in self._jobs

    def _on_selection(self, *_: object) -> None:
        if self._doc is not None and live.live_area(self._doc)[0] != self._area:
            self._settings_changed()

    def _settings_changed(self, *_: object) -> None:
        if self._doc is None or self._applying:
            return
        self._changed = True
        self._trigger_at = time.perf_counter()
        self._timer.start(DEBOUNCE_MS)

    def _style_changed(self, *_: object) -> None:
        """A style brings its live strength."""
        try:
            settings = live.live_settings(self.controller.panel.params())
        except CanvasAIError:
            return
        self.bar.strength.setValue(float(settings.strength))

    def _fire(self) -> None:
        doc = self._doc
        if doc is None:
            return
        if self.window.canvas.stroking:  # the stroke's end fires again
            return
        dirty, changed = self._dirty, self._changed
        if not changed and not live.touches_live_area(doc, dirty):
            self._dirty = Rect(0, 0, 0, 0)
            return
        if self._apply is not None:  # after the applied result lands
            return
        if self._planning:  # the next plan starts when this one lands
            self._replan = True
            return
        self._dirty, self._changed = Rect(0, 0, 0, 0), False
        # Planning composites the live area (0.1-0.5 s for a big document of many
        # layers): on a pool thread, from a copy-on-write snapshot taken here.
        params, strength = self.controller.panel.params(), self.bar.strength.value()
        snap = live.live_snapshot(doc, params)
        self._planning, token = True, self._plans
        run_in_pool(self, lambda: live.plan_live(snap, params, strength=strength),
                    lambda job: self._planned(token, job, None),
                    lambda exc: self._planned(token, None, exc))

    def _planned(self, token: int, job: FlowJob | None, error: BaseException | None) -> None:
        if token != self._plans:  # Live went off (or on again) meanwhile
            return
        self._planning = False
        if job is not None:
            self._submit(job)
        elif isinstance(error, (CanvasAIError, ValueError)):
            self.bar.info.setText(str(error))
        else:
            log.error("planning a live job failed", exc_info=error)
            self.bar.info.setText(f"The live job could not be prepared: {error}")
        if self._replan:
            self._replan = False
            self._fire()

    def _submit(self, job: FlowJob) -> None:
        try:
            job_id = self._submit_live(job.request)
        except RuntimeError as exc:  # the service was shut down (the window is closing)
            self.bar.info.setText(str(exc))
            return
        self.jobs_submitted += 1
        self._jobs[job_id] = (job, self._trigger_at or time.perf_counter())
        self._trigger_at = None
        self._latest = job_id
        self._area = job.target
        self.window.canvas.set_live_area(job.target)
        if self.frame is None:
            self._describe(job, "working…")

    def _describe(self, job: FlowJob, tail: str) -> None:
        req = job.request
        _rect, source = live.live_area(self._doc) if self._doc is not None else (None, "canvas")
        size = req.output_size or (job.target.w, job.target.h)
        self.bar.info.setText(f"{AREA_NAMES[source]} at {size[0]}×{size[1]} · {req.steps} "
                              f"steps · {tail}")

    # -- what comes back ---------------------------------------------------------------------
    def _on_preview(self, job_id: int, _step: int, rgba: Any) -> None:
        if job_id == self._latest and job_id in self._jobs and self._doc is self.window.document:
            self.window.canvas.set_live_overlay(_rgba(rgba), self._jobs[job_id][0].target)

    def _on_finished(self, job_id: int, result: Any) -> None:
        if self._apply is not None and job_id == self._apply[0]:
            self._applied(result)
            return
        entry = self._jobs.pop(job_id, None)
        if entry is None or job_id != self._latest or self._doc is None:
            return  # superseded (or Live went off): never shown
        job, t0 = entry
        image = _rgba(result.images[0])
        self.frame = (job, image)
        self._frame_result = result
        self.window.canvas.set_live_overlay(image, job.target)
        self.last_latency = time.perf_counter() - t0
        text = f"last frame {self.last_latency:.2f} s"
        self._describe(job, text)
        self.status_label.setText(f"Live · {text}")
        self.bar.set_can_apply(True)
        if self._timer.isActive():  # strokes made while it ran: their job goes now
            self._timer.start(0)

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._apply is not None and job_id == self._apply[0]:
            self._apply = None
            self.controller.panel.show_error(f"The live frame could not be applied: {message}")
            self._resume()
            return
        entry = self._jobs.pop(job_id, None)
        if entry is not None and job_id == self._latest:
            self.bar.info.setText(message)
            self.controller.panel.show_error(message)

    def _on_cancelled(self, job_id: int) -> None:
        if self._apply is not None and job_id == self._apply[0]:
            self._apply = None
            self._resume()
            return
        self._jobs.pop(job_id, None)

    # -- apply -------------------------------------------------------------------------------
    def apply(self, new_layer: bool = False) -> bool:
        """Apply the newest frame (into the active layer, or on a new layer); False when
        there is nothing to apply.

        A frame the full autoencoder decoded (no tiny one installed: metadata
        ``decoder="vae"``) is what the full-quality run would give bit for bit, so it is
        pasted as shown, at once. Otherwise its request is re-run with ``live=False`` (same
        seed, steps and size) and that result is pasted when it lands."""
        doc = self._doc
        if doc is None or self.frame is None or self._apply is not None:
            return False
        job, _image = self.frame
        self._timer.stop()
        self._plans += 1  # a plan still being made is for a session that is over
        self._planning = self._replan = False
        self._cancel_live()
        self._jobs.clear()
        self._latest = None
        result = self._frame_result
        if result is not None and dict(result.metadata).get("decoder") == "vae":
            self._apply = (0, job, bool(new_layer), doc)
            self.applied_directly += 1
            self._applied(result)
            return True
        job_id, request = self.service.submit_job(replace(job.request, live=False))
        self._apply = (job_id, replace(job, request=request), bool(new_layer), doc)
        self.bar.set_can_apply(False)
        self.bar.info.setText("Applying the live frame…")
        return True

    @property
    def applying(self) -> bool:
        return self._apply is not None

    def _applied(self, result: Any) -> None:
        assert self._apply is not None
        _id, job, new_layer, doc = self._apply
        self._apply = None
        active = doc.active_layer
        if (active is None or active.role_type in GUIDE_ROLES or active.locked
                or not active.visible):
            new_layer = True  # never into a guide layer, a locked or a hidden one
        seed = int(result.seeds[0]) if result.seeds else int(job.request.seed or 0)
        paste_job, image = live.apply_job(job, result.images[0], new_layer=new_layer)
        self._applying = True
        try:
            flows.apply_result(doc, paste_job, image, seed, dict(result.metadata),
                               into_active=not new_layer, clear_mask=False)
            from canvasai.generation.history import record

            record(doc, flows.generation_record(job, seed, dict(result.metadata)), image)
        except (CanvasAIError, ValueError) as exc:
            self.controller.panel.show_error(f"The live frame could not be applied: {exc}")
        finally:
            self._applying = False
        self.frame = self._frame_result = None
        self.window.canvas.set_live_overlay(None)
        self.bar.info.setText("Applied as a new layer" if new_layer else
                              "Applied to the active layer")
        self._resume()

    def _resume(self) -> None:
        """After an apply: changes made meanwhile start a live job."""
        if self._doc is not None and (self._changed or not self._dirty.is_empty()):
            self._timer.start(0)
        self.bar.set_can_apply(self.frame is not None)

    # -- pinned area -------------------------------------------------------------------------
    def _sync_pin(self) -> None:
        doc = self.window.document
        pinned = doc is not None and live.live_frame(doc) is not None
        self.bar.pin.blockSignals(True)
        self.bar.pin.setChecked(pinned)
        self.bar.pin.blockSignals(False)

    def _pin_toggled(self, on: bool) -> None:
        doc = self.window.document
        if doc is None:
            return
        if on:
            rect, _source = live.live_area(doc)
            live.set_live_frame(doc, rect)
        else:
            live.set_live_frame(doc, None)
        if self._doc is not None:
            self._settings_changed()

    def shutdown(self) -> None:
        if self._doc is not None:
            self.action.setChecked(False)


def install(window: Any, controller: Any) -> LiveMode:
    """Add live painting to `window` (its generation controller runs the jobs)."""
    mode = LiveMode(window, controller)
    window.live = mode
    return mode
