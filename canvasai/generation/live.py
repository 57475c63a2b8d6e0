"""Live painting, Qt-free: which area a live frame covers, and the request that makes it.

While Live is on, every stroke end (and every change of prompt, strength or a control
layer) regenerates the *live area* as a few-step img2img job:

- the live area is the frame the person pinned (``Pin area`` in the Live bar: the
  selection's bounds kept on the document, so painting may go on without a selection),
  else the selection's bounds, else the whole canvas;
- the picture is sent at reduced size when the area is larger than the model's native
  size (its longest side at most the native side: a 1920×1080 canvas runs at 512×288 on
  an SD 1.x model), else as it is (the backend scales it to the native size);
- steps and guidance are the current style's `live` settings (defaults without a style);
  the strength is the Live bar's (the style's live strength until the person changes it);
- the seed is fixed: the panel's seed when it is locked, else one kept on the document
  (``metadata["live_seed"]``), so that only what changed on the canvas changes the frame;
- every visible control layer, reference and region goes along as in `flows.plan`
  (controls and regions over the same area, at the same reduced size);
- a live area with nothing painted in it is generated from the prompt (txt2img).

The same canvas and the same settings always give the same request (`plan_live`), and a
change outside the live area starts no job (`touches_live_area`).

Apply (see `canvasai.ui.live_mode`) re-runs the newest frame's request with
``live=False`` (same seed, steps and size: the same picture, decoded by the full VAE) and
pastes it through `flows.apply_result`, one undo step; `apply_job` builds the job it
pastes with.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import replace
from typing import Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import (
    CLASSIC_MODEL,
    SEED_MODULUS,
    BlendSettings,
    GenerationRequest,
    Task,
)
from canvasai.core.geometry import Rect
from canvasai.document.document import Document, snapshot_document
from canvasai.document.selection import selection_bounds
from canvasai.generation import flows
from canvasai.generation.flows import FlowError, FlowJob
from canvasai.generation.params import FlowParams

FRAME_KEY = "live_frame"  # document metadata: the pinned live area [x, y, w, h]
SEED_KEY = "live_seed"  # document metadata: the live seed when the panel's is not locked
DEFAULT_NATIVE = 512
MULTIPLE = 16  # reduced sizes are multiples of 16 (SD wants 8, the DiTs 16)


# ------------------------------------------------------------------------------ the area
def live_frame(doc: Document) -> Rect | None:
    """The pinned live frame inside the canvas, or None (none pinned, or off the canvas)."""
    raw = doc.metadata.get(FRAME_KEY)
    try:
        x, y, w, h = (int(v) for v in raw)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    r = Rect(x, y, w, h).intersect(doc.rect)
    return None if r.is_empty() else r


def set_live_frame(doc: Document, rect: Rect | None) -> None:
    """Pin `rect` as the live area (None unpins). Kept with the document (saved in .ora)."""
    if rect is None or rect.intersect(doc.rect).is_empty():
        doc.metadata.pop(FRAME_KEY, None)
        return
    r = rect.intersect(doc.rect)
    doc.metadata[FRAME_KEY] = [r.x, r.y, r.w, r.h]


def live_area(doc: Document) -> tuple[Rect, str]:
    """The live area and where it comes from: "frame", "selection" or "canvas"."""
    frame = live_frame(doc)
    if frame is not None:
        return frame, "frame"
    sel = selection_bounds(doc)
    if not sel.is_empty():
        return sel.snapped_out(8).intersect(doc.rect), "selection"
    return doc.rect, "canvas"


def touches_live_area(doc: Document, dirty: Rect | None) -> bool:
    """Whether a change over `dirty` (document coordinates) can change the live frame.
    None or an empty rect touches nothing."""
    if dirty is None or dirty.is_empty():
        return False
    return not dirty.intersect(live_area(doc)[0]).is_empty()


def native_side(model: str) -> int:
    """The native side of `model`'s family (the registry's last scan; 512 when unknown)."""
    from canvasai.backends.diffusion import families

    info = models.peek(model)
    fam = families.find(info.family) if info is not None else None
    return int(fam.native_side) if fam is not None else DEFAULT_NATIVE


def work_size(rect: Rect, native: int) -> tuple[int, int] | None:
    """The reduced (w, h) a live area is sent at: its longest side at most `native`, in
    multiples of 16; None when the area is not larger than that (sent as it is)."""
    longest = max(rect.w, rect.h)
    if longest <= native:
        return None
    scale = native / longest

    def side(v: int) -> int:
        return max(MULTIPLE, int(v * scale) // MULTIPLE * MULTIPLE)

    return side(rect.w), side(rect.h)


def picture(doc: Document, rect: Rect, size: tuple[int, int] | None) -> np.ndarray:
    """The picture a live job reads over `rect` (every visible layer but the control and
    reference layers, as `flows` reads it), at `size` (w, h; None: full resolution).

    Reduced, it is composited from every `step`-th pixel of the layers (`step` the
    largest power of two that keeps at least 1.5 times the pixels asked for) and then
    area-averaged to `size`: a 1920×1080 canvas for 512×288 reads a quarter of its
    pixels, so a stroke end costs the GUI thread little even on a large canvas."""
    if size is None:
        return flows._snapshot(doc, rect)
    step = 1
    while 2 * (max(rect.w, rect.h) // (step * 2)) >= 3 * max(size):
        step *= 2
    if step == 1:
        return _resized(flows._snapshot(doc, rect), size)
    from canvasai.document.blend import to_straight_uint8
    from canvasai.document.compositing import composite_sampled

    acc = composite_sampled(flows.picture_layers(doc), rect, step)
    return _resized(to_straight_uint8(acc), size)


def _resized(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (image.shape[1], image.shape[0]) == size:
        return image
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------ the seed
def live_seed(doc: Document, params: FlowParams) -> int:
    """The panel's seed when it is locked, else the document's own live seed (made once)."""
    if params.seed is not None:
        return int(params.seed) % SEED_MODULUS
    seed = doc.metadata.get(SEED_KEY)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_MODULUS:
        seed = secrets.randbelow(SEED_MODULUS)
        doc.metadata[SEED_KEY] = seed
    return seed


def live_snapshot(doc: Document, params: FlowParams) -> Document:
    """A copy-on-write copy of `doc` to plan its live job from on another thread
    (`snapshot_document`), with the metadata live planning reads: the pinned frame and
    the live seed, which is made here first, on `doc`, so that it is kept."""
    live_seed(doc, params)
    snap = snapshot_document(doc, metadata=False)
    snap.metadata = {k: copy.deepcopy(doc.metadata[k]) for k in (FRAME_KEY, SEED_KEY)
                     if k in doc.metadata}
    return snap


# --------------------------------------------------------------------------- the request
def _style(params: FlowParams, style: Any) -> Any:
    if style is None and params.style:
        from canvasai.generation import styles

        style = styles.find(params.style)
        if style is None:
            raise FlowError(f"The style “{params.style}” is not installed any more: "
                            "pick another.")
    return style


def live_settings(params: FlowParams, style: Any = None) -> Any:
    """The `styles.LiveSettings` live painting runs with: the style's, else the defaults."""
    from canvasai.generation.styles import LiveSettings

    style = _style(params, style)
    return style.live if style is not None else LiveSettings()


def check_live(doc: Document, params: FlowParams) -> None:
    """Raise FlowError with a sentence for the person when live painting cannot run on
    `doc` with `params` (no diffusion model, nothing to paint); cheap, unlike `plan_live`."""
    if not params.model or params.model == CLASSIC_MODEL:
        raise FlowError("Live painting needs a diffusion model: choose one in the model "
                        "list (Classic cannot paint live).")
    if live_area(doc)[0].is_empty():
        raise FlowError("The canvas is empty: there is nothing to paint live.")


def plan_live(doc: Document, params: FlowParams, style: Any = None, *,
              strength: float | None = None) -> FlowJob:
    """The live job for `doc` as it is now: an img2img request (txt2img when nothing is
    painted in the live area) with ``live=True``, the style's live steps and guidance,
    `strength` (None: the style's live strength), a fixed seed, and the document's
    visible control layers, references and regions. Raises FlowError with a sentence for
    the person when live painting cannot run (no diffusion model)."""
    check_live(doc, params)
    style = _style(params, style)
    live = live_settings(params, style)
    rect, _source = live_area(doc)
    size = work_size(rect, native_side(params.model))
    seed = live_seed(doc, params)
    p = replace(params, steps=int(live.steps), guidance=float(live.guidance),
                strength=float(live.strength if strength is None else strength),
                seed=seed, batch_size=1)
    image = picture(doc, rect, size)
    out_w, out_h = size or (rect.w, rect.h)
    if image[..., 3].any():
        request = flows._base_request(Task.IMG2IMG, p, image=image)
    else:
        request = flows._base_request(Task.TXT2IMG, p, width=out_w, height=out_h)
    controls, notes = flows.control_inputs(doc, rect, p)
    refs, n = flows.reference_inputs(doc)
    notes += n
    regions, n = flows.region_inputs(doc, rect, (out_w, out_h))
    notes += n
    request = replace(
        request, live=True, native_resolution=size is None,
        controls=tuple(replace(c, image=_resized(c.image, size)) for c in controls),
        references=tuple(refs), regions=tuple(regions),
    )
    if style is not None:
        prompt, negative = style.render(params.prompt, params.negative_prompt)
        request = replace(request, prompt=prompt, negative_prompt=negative)
    return FlowJob("live", request, rect, rect, p, preview_rect=rect,
                   doc_size=(doc.width, doc.height), notes=tuple(notes))


def frame_to_area(job: FlowJob, image: np.ndarray) -> np.ndarray:
    """A frame (or the applied result) of `job` at the live area's full size, RGBA."""
    import cv2

    t = job.target
    img = np.asarray(image, dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if (img.shape[1], img.shape[0]) != (t.w, t.h):
        img = cv2.resize(img, (t.w, t.h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img)


def apply_job(job: FlowJob, image: np.ndarray, *, new_layer: bool) -> tuple[FlowJob,
                                                                               np.ndarray]:
    """The job and full-size image `flows.apply_result` pastes a live result with.

    As a new layer: the live job itself (its result lands on a new layer over the area).
    Into the active layer: an inpaint of the whole area through a full mask with no grow
    or feather, so the one paste-back replaces exactly the area's pixels and nothing
    outside it changes.
    """
    full = frame_to_area(job, image)
    if new_layer:
        return job, full
    t = job.target
    req = job.request
    request = GenerationRequest(
        task=Task.INPAINT, image=full, mask=np.full((t.h, t.w), 255, np.uint8),
        prompt=req.prompt, negative_prompt=req.negative_prompt, model=req.model,
        steps=req.steps, guidance=req.guidance, strength=req.strength, seed=req.seed,
        scheduler=req.scheduler, blend=BlendSettings(grow_px=0, feather_px=0,
                                                      color_match=False),
        loras=req.loras, previews=False,
    )
    return replace(job, flow="inpaint", request=request), full
