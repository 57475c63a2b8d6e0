"""The editing flows, Qt-free: turn the document into a frozen request, and a result back
into one undoable change of the document.

- inpaint: the mask (or selection) → context rect → request → a new layer that holds
  the result only where the feathered mask reaches (transparent elsewhere, so every
  pixel outside it composites bit-identically);
- outpaint: margins → a strip of the existing image → the canvas grows and a new
  layer holds the generated new area (existing pixels untouched);
- sketch: the sketch layer is the ControlNet input → a new layer above the sketch
  (optionally only inside the mask);
- upscale: every layer resampled (no AI); or the image / active layer upscaled into
  one new layer over the resampled originals, which are hidden; or a new document;
- generate / refine: txt2img / img2img over the selection's bounds or the whole canvas.

Layer roles (issue 12): every *visible* control layer, reference image and region-prompt
layer goes with generate, refine, inpaint, sketch and edit jobs (bottom to top, as in the
stack): controls cropped to the job's area exactly as its image is, references cropped
to their painted bounds, regions as the layer's alpha over the job's output area. Control
and reference layers are guides, not paint: the picture a job reads leaves them out.
Hidden layers are never used, whatever their role.

`plan_*` run on the GUI thread and only snapshot pixels; `apply_result` is one undo step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from canvasai.backends import masking, models
from canvasai.backends.api import (
    CLASSIC_MODEL,
    MAX_CONTROLS,
    MAX_REFERENCES,
    MAX_REGIONS,
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    ReferenceImage,
    ReferenceKind,
    RegionPrompt,
    Task,
    UpscaleSettings,
)
from canvasai.backends.loras import LoraSpec
from canvasai.core import settings
from canvasai.core.errors import CanvasAIError
from canvasai.core.geometry import Rect
from canvasai.document import selection
from canvasai.document.compositing import composite_layers
from canvasai.document.document import Document
from canvasai.document.layer import ControlRole, Layer, ReferenceRole, RegionRole
from canvasai.document.tiles import TiledSurface
from canvasai.document.transform import (
    ScaledDocument,
    apply_scaled,
    resize_canvas,
    scale_document,
)
from canvasai.generation.history import GenerationRecord
from canvasai.generation.params import UPSCALE_METHODS, UPSCALE_TARGETS, FlowParams

FLOWS = ("auto", "generate", "refine", "inpaint", "outpaint", "sketch", "upscale")
MAX_STRIP = 512  # px of existing image given as context to an outpaint


class FlowError(CanvasAIError):
    """The document is not ready for the chosen flow (e.g. inpaint without a mask)."""


@dataclass(frozen=True)
class FlowJob:
    """A planned job: the request plus where and how its result lands."""

    flow: str
    request: GenerationRequest
    target: Rect  # where the result lands, in document coordinates *after* the change
    source_rect: Rect  # what was sent, in document coordinates before the change
    params: FlowParams
    sketch_layer_id: int | None = None
    preview_rect: Rect | None = None  # where previews are drawn (document coords, before)
    doc_size: tuple[int, int] = (0, 0)  # the canvas size the job was planned for
    notes: tuple[str, ...] = ()  # what was left out and why (an empty region, ...)

    @property
    def label(self) -> str:
        return self.flow.capitalize()


#: the tasks whose requests carry the control layers, references and regions
ROLE_TASKS = (Task.TXT2IMG, Task.IMG2IMG, Task.INPAINT, Task.SKETCH, Task.EDIT)
#: roles whose layers guide a job without being part of the picture it reads
_GUIDE_ROLES = ("control", "reference")


def picture_layers(doc: Document) -> list[Layer]:
    """The layers whose pixels a job reads: every layer but the control and reference
    layers (those guide the model instead)."""
    return [la for la in doc.layers if la.role_type not in _GUIDE_ROLES]


def _snapshot(doc: Document, rect: Rect) -> np.ndarray:
    """The picture a job reads over `rect` (straight uint8 RGBA)."""
    return composite_layers(picture_layers(doc), rect)


def role_layers(doc: Document, role_type: str) -> list[Layer]:
    """The visible layers with that role ("control", "reference", "region"), bottom first."""
    return [la for la in doc.layers if la.visible and la.role_type == role_type]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def roles_summary(doc: Document) -> str:
    """What the visible role layers add to a job, e.g. "2 control layers, 1 reference"."""
    parts = [_count(len(role_layers(doc, t)), w) for t, w in
             (("control", "control layer"), ("reference", "reference"), ("region", "region"))
             if role_layers(doc, t)]
    return ", ".join(parts)


def roles_note(doc: Document, flow: str) -> str:
    """One line on the role layers for `flow`: what it uses, or that it uses none of them,
    and which hidden ones are left out ("" when the document has no role layers)."""
    used = roles_summary(doc)
    hidden = [la for la in doc.layers if not la.visible and la.role is not None]
    parts = []
    if used:
        if flow in ("outpaint", "upscale"):
            parts.append(f"{flow} uses no control layers, references or regions")
        else:
            parts.append(f"uses {used}")
    if hidden:
        names = ", ".join(f"“{la.name}”" for la in hidden[:3]) + ("…" if len(hidden) > 3 else "")
        parts.append(f"hidden, so not used: {names}")
    return "; ".join(parts)


def _controlnet_for(p: FlowParams, role: ControlRole, count: int) -> str | None:
    """The ControlNet for a control layer: its own, else the panel's choice when that is
    made for its type (or when it is the only control layer), else picked by type."""
    if role.model:
        return role.model
    if not p.controlnet:
        return None
    info = models.peek(p.controlnet)
    ctype = getattr(info, "control_type", None) if info is not None else None
    if ctype == role.kind or (ctype is None and count == 1):
        return p.controlnet
    return None


def _within(n: int, limit: int, what: str) -> None:
    """FlowError when more role layers are in use than work together."""
    if n > limit:
        raise FlowError(f"{n} {what}; at most {limit} work together: hide the ones this "
                        "picture does not need.")


def control_inputs(doc: Document, rect: Rect, p: FlowParams) -> tuple[list[ControlSettings],
                                                                       list[str]]:
    """Every visible control layer as a ControlSettings over `rect` (the job's area), and
    notes on the ones left out."""
    layers = role_layers(doc, "control")
    _within(len(layers), MAX_CONTROLS, "control layers are visible")
    out, notes = [], []
    for layer in layers:
        role = layer.role
        assert isinstance(role, ControlRole)
        if not layer.surface.tile_keys() and not layer.surface.fill[3]:
            notes.append(f"control layer “{layer.name}” is empty: not used")
            continue
        out.append(ControlSettings(
            kind=ControlKind(role.kind), image=_over_white(layer, rect),
            model=_controlnet_for(p, role, len(layers)), preprocess=role.preprocess,
            scale=role.strength, start=role.start, end=role.end,
        ))
    return out, notes


def reference_inputs(doc: Document, extra_ids: tuple[int, ...] = ()) -> tuple[
        list[ReferenceImage], list[str]]:
    """Every visible reference layer (and the layers ticked by id for Edit, strength 1)
    as a ReferenceImage of its painted part, on white; notes on the ones left out."""
    layers = role_layers(doc, "reference")
    ticked = [la for la in doc.layers if la.id in set(extra_ids) and la not in layers]
    out, notes = [], []
    for layer in layers + ticked:
        role = layer.role if isinstance(layer.role, ReferenceRole) else ReferenceRole(
            strength=1.0)
        bounds = (doc.rect if layer.surface.fill[3] else layer.surface.bounds()).intersect(
            doc.rect)
        if bounds.is_empty():
            notes.append(f"reference “{layer.name}” is empty: not used")
            continue
        out.append(ReferenceImage(image=_over_white(layer, bounds),
                                  strength=role.strength, kind=ReferenceKind(role.kind)))
    _within(len(out), MAX_REFERENCES, "reference images are in use")
    return out, notes


def region_inputs(doc: Document, rect: Rect, size: tuple[int, int]) -> tuple[
        list[RegionPrompt], list[str]]:
    """Every visible region layer as a RegionPrompt: its alpha over `rect` (the job's
    output area) at `size` (width, height: the output's size); notes on the ones left out
    (nothing of the region inside this job's area)."""
    layers = role_layers(doc, "region")
    _within(len(layers), MAX_REGIONS, "region layers are visible")
    out, notes = [], []
    for layer in layers:
        role = layer.role
        assert isinstance(role, RegionRole)
        alpha = np.ascontiguousarray(layer.surface.read(rect)[..., 3])
        if (alpha.shape[1], alpha.shape[0]) != size:
            import cv2

            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        if not alpha.any():
            notes.append(f"region “{layer.name}” is outside this job's area: not used")
            continue
        out.append(RegionPrompt(prompt=role.prompt, mask=alpha, negative_prompt=role.negative))
    return out, notes


def _with_roles(doc: Document, job: FlowJob) -> FlowJob:
    """The job with the document's role layers in its request (the tasks in ROLE_TASKS)."""
    req = job.request
    if req.task not in ROLE_TASKS:
        return job
    notes = list(job.notes)
    changes: dict[str, Any] = {}
    if req.task != Task.SKETCH:  # the sketch planner collects its controls itself
        controls, n = control_inputs(doc, job.source_rect, job.params)
        notes += n
        if controls:
            changes["controls"] = tuple(controls)
    ids = job.params.reference_layers if req.task == Task.EDIT else ()
    refs, n = reference_inputs(doc, ids)
    notes += n
    if refs:
        changes["references"] = tuple(refs)
    size = req.output_size or (job.source_rect.w, job.source_rect.h)
    regions, n = region_inputs(doc, job.source_rect, size)
    notes += n
    if regions:
        changes["regions"] = tuple(regions)
    if changes:
        job = replace(job, request=replace(req, **changes))
    return replace(job, notes=tuple(notes))


def _base_request(task: Task, p: FlowParams, **kw: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "task": task, "prompt": p.prompt, "negative_prompt": p.negative_prompt, "model": p.model,
        "steps": p.steps, "guidance": p.guidance, "strength": p.strength, "seed": p.seed,
        "batch_size": p.batch_size, "scheduler": p.scheduler, "classic_method": p.classic_method,
        "blend": p.blend(), "loras": tuple(LoraSpec(n, w) for n, w in p.loras),
        "previews": settings.current().generation.preview_quality != "off",
    }
    return GenerationRequest(**(fields | kw))


def region_surface(doc: Document) -> TiledSurface | None:
    """The surface marking what to regenerate: the painted mask, else the selection."""
    if not doc.mask.is_blank:
        return doc.mask
    return doc.selection


def region_mask(doc: Document, rect: Rect | None = None) -> np.ndarray | None:
    """The mask to regenerate as an (h, w) array over `rect` (default: the whole canvas)."""
    surface = region_surface(doc)
    return None if surface is None else surface.read(rect or doc.rect)[..., 0]


def _region_bounds(surface: TiledSurface, doc: Document) -> Rect:
    """Tight bounds of the marked pixels, from the tiles: no full-canvas read."""
    if surface.fill.any():
        return doc.rect
    return surface.bounds().intersect(doc.rect)


def _is_edit_model(name: str) -> bool:
    """The chosen model follows instructions (the registry's last scan says; no new scan)."""
    info = models.peek(name)
    return info is not None and info.kind == models.EDIT


def auto_flow(doc: Document, p: FlowParams) -> str:
    """What Generate does when the person didn't pick a task."""
    return auto_choice(doc, p)[0]


def auto_choice(doc: Document, p: FlowParams) -> tuple[str, str]:
    """Auto's task and, in plain words, why (the panel shows it before Generate runs)."""
    if _is_edit_model(p.model) and not any(p.margins):
        return "edit", "the chosen model follows instructions"
    if any(p.margins):
        return "outpaint", "the outpaint frame extends the canvas"
    flow, why = _auto_task(doc)
    note = roles_note(doc, flow)
    return flow, f"{why}; {note}" if note else why


def _auto_task(doc: Document) -> tuple[str, str]:
    if not doc.mask.is_blank:
        return "inpaint", "a mask is painted"
    controls = role_layers(doc, "control")
    if len(controls) == 1:
        return "sketch", f"“{controls[0].name}” is a control layer"
    if controls:
        return "sketch", f"{len(controls)} control layers are visible"
    if doc.selection is not None:
        return "inpaint", "there is a selection"
    if any(la.surface.tile_keys() for la in picture_layers(doc)):
        return "refine", "something is painted and nothing is masked or selected"
    return "generate", "nothing is painted yet"


def plan(doc: Document, flow: str, p: FlowParams, style: Any = None) -> FlowJob:
    """The job for `flow` on `doc`. A style (given, or named by ``p.style``) wraps the
    prompt and negative prompt in its templates; the panel keeps the person's own text."""
    if style is None and p.style:
        from canvasai.generation import styles

        style = styles.find(p.style)
        if style is None:
            raise FlowError(f"The style “{p.style}” is not installed any more: pick another.")
    if flow == "auto":
        flow = auto_flow(doc, p)
    planners = {
        "inpaint": plan_inpaint, "outpaint": plan_outpaint, "sketch": plan_sketch,
        "upscale": plan_upscale, "generate": plan_generate, "refine": plan_refine,
        "edit": plan_edit,
    }
    if flow not in planners:
        raise FlowError(f"Unknown task “{flow}”.")
    job = _with_roles(doc, replace(planners[flow](doc, p), doc_size=(doc.width, doc.height)))
    if style is not None and job.request.task != Task.UPSCALE:
        prompt, negative = style.render(p.prompt, p.negative_prompt)
        job = replace(job, request=replace(job.request, prompt=prompt, negative_prompt=negative))
    return job


def plan_inpaint(doc: Document, p: FlowParams) -> FlowJob:
    surface = region_surface(doc)
    bbox = _region_bounds(surface, doc) if surface is not None else Rect(0, 0, 0, 0)
    if bbox.is_empty():
        raise FlowError("Paint a mask (M) or make a selection first: it marks what to regenerate.")
    reach = p.grow_px + p.feather_px
    ctx = masking.inpaint_context(bbox.adjusted(reach, reach, reach, reach).intersect(doc.rect),
                                   doc.rect)
    request = _base_request(
        Task.INPAINT, p, image=_snapshot(doc, ctx), mask=surface.read(ctx)[..., 0],
    )
    return FlowJob("inpaint", request, ctx, ctx, p, preview_rect=ctx)


def plan_edit(doc: Document, p: FlowParams) -> FlowJob:
    """Edit by instruction: the selection (or painted mask) with context, else the whole picture.

    With a region the result goes back through the feathered mask like inpaint; the
    layers named in `p.reference_layers` go along as reference images.
    """
    if not p.prompt.strip():
        raise FlowError("Write the instruction first, e.g. “make it night” or “remove the lamp”.")
    surface = region_surface(doc)
    bbox = _region_bounds(surface, doc) if surface is not None else Rect(0, 0, 0, 0)
    if bbox.is_empty():
        r = doc.rect
        request = _base_request(Task.EDIT, p, image=_snapshot(doc, r))
        return FlowJob("edit", request, r, r, p, preview_rect=r)
    reach = p.grow_px + p.feather_px
    ctx = masking.inpaint_context(bbox.adjusted(reach, reach, reach, reach).intersect(doc.rect),
                                   doc.rect)
    request = _base_request(
        Task.EDIT, p, image=_snapshot(doc, ctx), mask=surface.read(ctx)[..., 0],
    )
    return FlowJob("edit", request, ctx, ctx, p, preview_rect=ctx)


def _outpaint_context(doc: Document, margins: tuple[int, int, int, int]) -> Rect:
    left, top, right, bottom = margins
    strip_w = min(doc.width, MAX_STRIP, max(64, 2 * max(left, right, 1)))
    strip_h = min(doc.height, MAX_STRIP, max(64, 2 * max(top, bottom, 1)))
    parts = []
    if left:
        parts.append(Rect(0, 0, strip_w, doc.height))
    if right:
        parts.append(Rect(doc.width - strip_w, 0, strip_w, doc.height))
    if top:
        parts.append(Rect(0, 0, doc.width, strip_h))
    if bottom:
        parts.append(Rect(0, doc.height - strip_h, doc.width, strip_h))
    out = Rect(0, 0, 0, 0)
    for r in parts:
        out = out.union(r)
    return out


def plan_outpaint(doc: Document, p: FlowParams) -> FlowJob:
    left, top, right, bottom = (int(v) for v in p.margins)
    if min(left, top, right, bottom) < 0 or not any((left, top, right, bottom)):
        raise FlowError("Drag the frame past an edge, or set how far to extend the canvas.")
    ctx = _outpaint_context(doc, (left, top, right, bottom))
    request = _base_request(
        Task.OUTPAINT, p, image=_snapshot(doc, ctx), strength=1.0,
        outpaint=OutpaintSettings(left=left, right=right, top=top, bottom=bottom, prefill=p.prefill),
    )
    # The grown context in the new document's coordinates.
    target = Rect(ctx.x, ctx.y, ctx.w + left + right, ctx.h + top + bottom)
    preview = Rect(ctx.x - left, ctx.y - top, target.w, target.h)
    return FlowJob("outpaint", request, target, ctx, p, preview_rect=preview)


def sketch_layer(doc: Document) -> Layer:
    """The layer a sketch result lands above: the topmost visible control layer, else the
    active layer (rendered with the panel's control type)."""
    controls = role_layers(doc, "control")
    if controls:
        return controls[-1]
    if doc.active_layer is None:
        raise FlowError("There is no layer to use as a sketch.")
    return doc.active_layer


def plan_sketch(doc: Document, p: FlowParams) -> FlowJob:
    """Render the visible control layers (all together); with none, the active layer as a
    control of the panel's type, strength and preprocessing (the CLI's way)."""
    layer = sketch_layer(doc)
    notes: list[str] = []
    if layer.role_type == "control":
        controls, notes = control_inputs(doc, doc.rect, p)
        if not controls:
            raise FlowError(f"The control layer “{layer.name}” is empty: draw something first.")
    else:
        if not layer.surface.tile_keys() and not layer.surface.fill[3]:
            raise FlowError(f"The sketch layer “{layer.name}” is empty: draw something first.")
        controls = [ControlSettings(kind=ControlKind(p.control),
                                    image=_over_white(layer, doc.rect),
                                    model=p.controlnet, preprocess=p.control_preprocess,
                                    scale=p.control_scale)]
    mask = region_mask(doc) if p.sketch_use_mask else None
    kw: dict[str, Any] = {}
    if mask is not None and mask.any():
        kw = {"image": _snapshot(doc, doc.rect), "mask": mask}
    request = _base_request(Task.SKETCH, p, controls=tuple(controls), width=doc.width,
                            height=doc.height, **kw)
    return FlowJob("sketch", request, doc.rect, doc.rect, p, sketch_layer_id=layer.id,
                   preview_rect=doc.rect, notes=tuple(notes))


def _over_white(layer: Layer, rect: Rect) -> np.ndarray:
    """The layer as a ControlNet sees a drawing: its strokes on a white sheet (H x W x 3,
    read-only so the request shares it instead of copying).

    Straight-alpha "over" on white, computed only where the layer is painted and in
    uint8 OpenCV passes (the compositor's general path took ~1 s a layer at 2048² on
    the GUI thread): white - (white - colour) * alpha."""
    import cv2

    out = np.full((rect.h, rect.w, 3), 255, np.uint8)
    surface = layer.surface
    area = rect
    if not surface.fill[3]:  # only the allocated tiles can hold paint (no pixel scan)
        area = Rect(0, 0, 0, 0)
        for key in surface.tile_keys():
            area = area.union(surface.key_rect(key))
        area = area.intersect(rect)
    if not area.is_empty():
        px = surface.read(area)
        alpha = np.ascontiguousarray(px[..., 3])
        ink = cv2.bitwise_not(cv2.cvtColor(px, cv2.COLOR_RGBA2RGB))
        ink = cv2.multiply(ink, cv2.merge([alpha, alpha, alpha]), scale=1 / 255)
        out[area.translated(-rect.x, -rect.y).slices()] = cv2.bitwise_not(ink)
    out.setflags(write=False)
    return out


def ai_upscale_method(model: str) -> str | None:
    """The AI upscale method `model` offers: "model" for an x4 upscaler, "refine" (tiled
    img2img) for any other model, None for Classic."""
    if not model or model == CLASSIC_MODEL:
        return None
    info = models.peek(model)
    return "model" if info is not None and info.kind == models.UPSCALER else "refine"


def plan_upscale(doc: Document, p: FlowParams) -> FlowJob:
    """Upscale as `p.upscale_target` says; with a model, by `p.upscale_method`.

    "resample" and the Lanczos method never run a model (the job goes to Classic);
    "model" (the x4 upscaler) and "refine" (Lanczos + tiled img2img) take their steps
    and, for refine, strength from the upscale settings, never from the sampling ones.
    """
    if p.upscale_factor not in (2, 4):
        raise FlowError("Upscale by 2× or 4×.")
    target_kind = "layer" if p.upscale_target == "resize" else p.upscale_target
    if target_kind not in UPSCALE_TARGETS:
        raise FlowError(f"Unknown upscale result {p.upscale_target!r}.")
    if p.upscale_method not in UPSCALE_METHODS:
        raise FlowError(f"Unknown upscale method {p.upscale_method!r}.")
    if p.upscale_source == "layer" and target_kind != "resample":
        layer = doc.active_layer
        if layer is None:
            raise FlowError("There is no active layer to upscale.")
        image = layer.surface.read(doc.rect)
    else:
        image = _snapshot(doc, doc.rect)
    f = p.upscale_factor
    no_ai = target_kind == "resample" or p.upscale_method == "lanczos" or p.model == CLASSIC_MODEL
    extra: dict[str, Any] = {}
    strength = 0.0
    if no_ai:
        extra["model"] = CLASSIC_MODEL
    else:
        offered = ai_upscale_method(p.model)
        if offered != p.upscale_method and models.peek(p.model) is not None:
            what = {"model": "the x4 upscaler model", "refine": "tiled refine"}
            raise FlowError(f"This model can't upscale by {what[p.upscale_method]}: choose "
                            f"{what.get(offered or '', 'Lanczos')} or Lanczos.")
        extra["steps"] = p.upscale_steps
        strength = p.upscale_refine_strength if p.upscale_method == "refine" else 0.0
        if p.upscale_method == "refine" and strength <= 0:
            raise FlowError("Tiled refine needs a strength above 0 (or choose Lanczos).")
    request = _base_request(
        Task.UPSCALE, p, image=image,
        upscale=UpscaleSettings(scale=f, tile=p.tile, overlap=p.overlap,
                                refine_strength=strength,
                                sharpen=0.0 if target_kind == "resample" else p.upscale_sharpen),
        **extra,
    )
    target = Rect(0, 0, doc.width * f, doc.height * f)
    return FlowJob("upscale", request, target, doc.rect, p, preview_rect=doc.rect)


def upscale_accept_status(job: FlowJob) -> str:
    """What accepting this upscale is doing, for the status line while it runs (short:
    the line is ~25 characters wide in a 1366-pixel window)."""
    t = job.target
    if job.params.upscale_target == "new_document":
        return f"New document {t.w}×{t.h}…"
    return f"Resampling to {t.w}×{t.h}…"


def _selection_or_canvas(doc: Document) -> Rect:
    from canvasai.document.selection import selection_bounds

    r = selection_bounds(doc)
    return (r if not r.is_empty() else doc.rect).snapped_out(8).intersect(doc.rect)


def plan_generate(doc: Document, p: FlowParams) -> FlowJob:
    r = _selection_or_canvas(doc)
    request = _base_request(Task.TXT2IMG, p, width=r.w, height=r.h)
    return FlowJob("generate", request, r, r, p, preview_rect=r)


def plan_refine(doc: Document, p: FlowParams) -> FlowJob:
    r = _selection_or_canvas(doc)
    request = _base_request(Task.IMG2IMG, p, image=_snapshot(doc, r))
    return FlowJob("refine", request, r, r, p, preview_rect=r)


# --------------------------------------------------------------------------- results
def generation_record(job: FlowJob, seed: int,
                      metadata: Mapping[str, Any] | None = None) -> GenerationRecord:
    """The one record of a candidate: kept on its layer, in the history and in exports."""
    return GenerationRecord.of(job.flow, job.params, job.request, seed,
                               (job.target.w, job.target.h), metadata)


def preview_alpha(job: FlowJob) -> np.ndarray | None:
    """Where a result of `job` shows, as a float32 (h, w) alpha over its preview rectangle.

    The same feathered mask the result is pasted through (inpaint, edit or sketch inside a
    mask), or only the new area (outpaint); None where the whole rectangle is replaced.
    Previews and candidates are drawn through it, so the canvas around stays visible.
    """
    rect = job.preview_rect or job.target
    if job.flow in ("inpaint", "edit", "sketch") and job.request.mask is not None:
        alpha = masking.paste_alpha(job.request.mask, job.request.blend)
        return alpha if alpha.shape == (rect.h, rect.w) else None
    if job.flow == "outpaint" and job.doc_size != (0, 0):
        alpha = np.ones((rect.h, rect.w), np.float32)
        old = Rect(0, 0, *job.doc_size).intersect(rect)
        if not old.is_empty():
            alpha[old.translated(-rect.x, -rect.y).slices()] = 0.0
        return alpha
    return None


def layer_name(job: FlowJob, seed: int) -> str:
    prompt = job.request.prompt.strip().replace("\n", " ")
    if len(prompt) > 40:
        prompt = prompt[:39] + "…"
    what = prompt or job.label
    return f"Generated: {what} ({seed})"


def _result_rgba(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _check_size(image: np.ndarray, w: int, h: int, what: str) -> np.ndarray:
    if image.shape[0] != h or image.shape[1] != w:
        raise FlowError(f"The {what} result is {image.shape[1]}×{image.shape[0]}, expected {w}×{h}.")
    return image


#: the tasks whose result goes back through the painted mask (or the selection)
_MASK_FLOWS = ("inpaint", "edit", "sketch")


def apply_result(doc: Document, job: FlowJob, image: np.ndarray, seed: int,
                 metadata: Mapping[str, Any] | None = None, *,
                 into_active: bool = False, clear_mask: bool | None = None,
                 scaled: ScaledDocument | None = None) -> Layer | Document:
    """Put an accepted result into the document as one undo step.

    Returns the new layer, or a new Document for an upscale sent to a new document.
    With `into_active`, an inpaint result replaces the pixels it reaches in the active
    layer instead of landing on a new layer above (exact for a one-layer document even
    where it is semi-transparent; the CLI uses it).
    A result that used the painted mask clears it in the same undo step when
    `clear_mask` is true (None: the ``ui/clear_mask_after_accept`` setting).
    `scaled`: for an upscale, the document's layers already resampled to the target size
    (`transform.prepare_scale(...).compute()`, done off the GUI thread); None resamples here.
    Raises FlowError (document unchanged) when the document no longer fits the job.
    """
    if clear_mask is None:
        clear_mask = settings.current().ui.clear_mask_after_accept
    img = _result_rgba(image)
    record = generation_record(job, seed, metadata).to_dict()
    name = layer_name(job, seed)
    if job.flow == "upscale" and job.params.upscale_target == "new_document":
        t = job.target
        new = Document(t.w, t.h, background=None)
        new.layers[0].surface.write(0, 0, _check_size(img, t.w, t.h, "upscale"))
        new.layers[0].name = name
        new.layers[0].generation = record
        new.history.clear()
        return new
    if job.doc_size != (0, 0) and job.doc_size != (doc.width, doc.height):
        raise FlowError("The canvas changed size since the job started: run it again.")
    with doc.history.macro(name):
        if clear_mask and job.flow in _MASK_FLOWS and job.request.mask is not None:
            selection.clear_mask(doc)  # the mask this result used (a no-op if none is painted)
        layer = Layer(name, generation=record)
        if job.flow == "inpaint" or (job.flow == "edit" and job.request.mask is not None):
            # an edit of the selection goes back exactly like an inpaint
            _apply_inpaint(doc, job, img, layer, into_active)
            if into_active:
                return doc.active_layer  # type: ignore[return-value]
        elif job.flow == "outpaint":
            _apply_outpaint(doc, job, img, layer)
        elif job.flow == "upscale":
            return _apply_upscale(doc, job, img, layer, scaled)
        else:
            t = job.target
            img = _check_size(img, t.w, t.h, job.flow)
            if job.flow == "sketch" and job.request.mask is not None:
                # The backend composited inside the mask; the layer covers what it reached.
                alpha = masking.paste_alpha(job.request.mask, job.request.blend)
                img = img.copy()
                img[..., 3] = np.minimum(img[..., 3], (alpha * 255 + 0.5).astype(np.uint8))
            layer.surface.write(t.x, t.y, img)
            index = None
            if job.sketch_layer_id is not None:
                ids = [la.id for la in doc.layers]
                if job.sketch_layer_id in ids:
                    index = ids.index(job.sketch_layer_id) + 1
            doc.add_layer(layer=layer, index=index)
    return layer


def _apply_inpaint(doc: Document, job: FlowJob, img: np.ndarray, layer: Layer,
                   into_active: bool) -> None:
    t = job.target
    img = _check_size(img, t.w, t.h, "inpaint")
    original = job.request.image
    # The backend pasted its result back already (masking.composite, the one paste-back):
    # it equals the original beyond the feathered mask. The layer keeps exactly the pixels
    # the feather reaches and is transparent elsewhere, so everything else composites
    # bit-identically.
    alpha = masking.paste_alpha(job.request.mask, job.request.blend)
    active = doc.active_layer
    if into_active and active is not None:
        reached = (alpha > 0)[..., None]
        pixels = np.where(reached, img, active.surface.read(t))
        doc.write_pixels(active, t.x, t.y, pixels, text=layer.name)
        active.generation = layer.generation
        return
    out = img.copy()
    out[..., 3] = np.where(alpha > 0, np.maximum(out[..., 3], original[..., 3]), 0)
    out[alpha <= 0] = 0
    layer.surface.write(t.x, t.y, out)
    layer.surface.prune()
    doc.add_layer(layer=layer, index=len(doc.layers))


def _apply_outpaint(doc: Document, job: FlowJob, img: np.ndarray, layer: Layer) -> None:
    left, top, right, bottom = job.params.margins
    t = job.target
    img = _check_size(img, t.w, t.h, "outpaint")
    old = resize_canvas(doc, left, top, right, bottom, text="Extend canvas")
    # Keep only the new area: existing pixels stay exactly as they were.
    out = img.copy()
    inner = old.intersect(Rect(t.x, t.y, t.w, t.h)).translated(-t.x, -t.y)
    out[inner.slices()] = 0
    layer.surface.write(t.x, t.y, out)
    layer.surface.prune()
    doc.add_layer(layer=layer, index=len(doc.layers))


def _apply_upscale(doc: Document, job: FlowJob, img: np.ndarray, layer: Layer,
                   scaled: ScaledDocument | None = None) -> Layer:
    """Resample every layer; unless the person chose only that, put the upscaled picture
    on one new layer above what it was made from and hide that beneath it."""
    t = job.target
    img = _check_size(img, t.w, t.h, "upscale")
    active = doc.active_layer
    if scaled is not None and (scaled.width, scaled.height) == (t.w, t.h):
        apply_scaled(doc, scaled, text="Upscale")
    else:
        scale_document(doc, t.w, t.h, text="Upscale")
    if job.params.upscale_target == "resample":
        return active if active is not None else layer
    if job.params.upscale_source == "layer" and active is not None:
        covered = [active]
        index = doc.index_of(active) + 1
    else:
        covered = list(doc.layers)
        index = len(doc.layers)
    for below in covered:
        if below.visible:
            doc.set_layer_properties(below, visible=False)
    layer.surface.write(0, 0, img)
    layer.surface.prune()
    doc.add_layer(layer=layer, index=index)
    return layer


def with_seed(job: FlowJob, seed: int | None) -> FlowJob:
    """The same job with another seed (re-run)."""
    return replace(job, request=replace(job.request, seed=seed),
                   params=replace(job.params, seed=seed))
