"""Reference images in generate / refine / inpaint / outpaint / sketch jobs.

What a model family does with `request.references` (`Family.reference_method`):

- ``"ip_adapter"`` (SD 1.x, SDXL): an IP-Adapter per reference, each with its own scale
  (`ip_adapter.py`: finding, checking and loading adapters and their image encoders,
  InstantStyle's block scales). The adapters stay loaded while the same files are asked
  for; a job without references unloads them (the UNet gets its plain attention
  processors back).
- ``"redux"`` (Flux.1): Flux Redux tokens appended to the prompt's T5 tokens
  (`redux.py`); the Flux pipeline receives ``prompt_embeds`` / ``pooled_prompt_embeds``
  instead of the prompt.
- ``"image"`` (Flux.2 Klein): the references go in as images (``image=`` for generate,
  ``image_reference=`` for the inpaint pipeline). Klein has no strength for them.
- Any other family: the references are not used and the result's note says so.

Edit jobs read references in `edit.py` (the edit models' own inputs). A reference of
strength 0 is left out, so it gives exactly the picture without it.

This module is the entry point and dispatch: it plans each job (`Plan`), keeps the
per-model state (loaded adapters, encoder, Redux), says what is missing (`readiness`),
passes the references to the pipeline (`apply`) and adds the notes to the result
(`finish`). A missing adapter or encoder is named with where to put it; an adapter of
another family (or whose layer sizes do not fit the UNet) is refused before anything is
loaded.

Flow: `prepare` (once per job, before the task module, from the backend) loads or
unloads what the job needs; the task modules pass their pipeline arguments through
`apply` right before running the pipeline. Torch/diffusers are imported lazily.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import GenerationRequest, ReferenceImage, ReferenceKind, Task
from canvasai.backends.diffusion.ip_adapter import (
    _IP_HINTS,
    IP_ADAPTER,
    _describe_ref,
    _Encoder,
    _pil,
    _plan_ip_adapter,
    expected_ip_layers,  # noqa: F401 - re-exported (tests/support/tiny_adapters.py)
    reference_rgb,
)
from canvasai.backends.diffusion.redux import REDUX_METHOD, _plan_redux, kwargs_with_redux
from canvasai.backends.models import IMAGE_ENCODER, IPADAPTER, REDUX, UNKNOWN

if TYPE_CHECKING:
    from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager

#: tasks whose pipelines read reference images here (Edit reads them in edit.py)
REFERENCE_TASKS = frozenset({Task.TXT2IMG, Task.IMG2IMG, Task.INPAINT, Task.OUTPAINT, Task.SKETCH})

IMAGE_METHOD = "image"  # IP_ADAPTER: ip_adapter.py; REDUX_METHOD: redux.py


# ----------------------------------------------------------------------------------- state


@dataclass
class Plan:
    """What one job does with its references (made by `prepare`)."""

    method: str = ""  # IP_ADAPTER | REDUX_METHOD | IMAGE_METHOD | "" (none used)
    refs: tuple[ReferenceImage, ...] = ()  # the ones used, in order
    scales: list[Any] = field(default_factory=list)  # IP-Adapter: one scale config per slot
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    request_key: int = 0  # id() of the request it was made for


@dataclass
class _State:
    """Per loaded model: the adapters in its UNet, the encoders, the Redux pipeline."""

    ip_slots: tuple[str, ...] = ()  # adapter files loaded into the UNet, one per slot
    encoder: _Encoder | None = None
    redux: tuple[str, Any] | None = None  # (path, FluxPriorReduxPipeline)
    plan: Plan | None = None
    pipes: Any = field(default_factory=weakref.WeakSet)  # pipelines given the encoder


_states: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


def _state(loaded: LoadedModel) -> _State:
    st = _states.get(loaded.pipe)
    if st is None:
        st = _states[loaded.pipe] = _State()
    return st


def loaded_adapters(loaded: LoadedModel) -> tuple[str, ...]:
    """The IP-Adapter files in `loaded`'s UNet now (one per slot; empty: none)."""
    st = _states.get(loaded.pipe)
    return st.ip_slots if st is not None else ()


# --------------------------------------------------------------------------------- planning


def prepare(manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest) -> Plan:
    """Load (or keep, or unload) what `request`'s references need on `loaded`; the plan.

    Called once per job before the task module runs. Raises `ModelError` for a missing
    or unfitting adapter, before anything is loaded."""
    st = _state(loaded)
    refs = tuple(r for r in request.references if r.strength > 0)
    method = loaded.family.reference_method
    plan = Plan(request_key=id(request))
    if request.references and request.task == Task.UPSCALE:
        plan.notes.append("reference images are not used when upscaling")
    if request.task not in REFERENCE_TASKS or not refs:
        release(loaded)
        st.plan = plan
        return plan
    dropped = len(request.references) - len(refs)
    if dropped:
        plan.notes.append(f"{dropped} reference image(s) of strength 0 left out")
    if method == IP_ADAPTER:
        _plan_ip_adapter(manager, loaded, refs, plan, st)
    elif method == REDUX_METHOD:
        release(loaded, keep_redux=True)
        _plan_redux(manager, loaded, refs, plan, st)
    elif method == IMAGE_METHOD:
        release(loaded)
        fam = loaded.family
        used = refs[: fam.max_references] if fam.max_references else refs
        if len(used) < len(refs):
            plan.notes.append(f"{fam.label} reads {len(used)} reference images: the others were not used")
        plan.method, plan.refs = IMAGE_METHOD, used
        if any(r.strength != 1.0 or r.kind != ReferenceKind.CONTENT for r in used):
            plan.notes.append(f"{fam.label} reads reference images as they are: their strength "
                              "and style/composition setting are not used")
        plan.meta = {"reference_images": [_describe_ref(r, "") for r in used],
                     "reference_method": "image inputs"}
    else:
        release(loaded)
        plan.notes.append(
            f"{loaded.family.label} models take no reference images here: they were not used "
            "(IP-Adapter works with SD 1.x/SDXL, Flux Redux with Flux.1; edit models read "
            "references in Edit)"
        )
    st.plan = plan
    return plan


def release(loaded: LoadedModel, keep_redux: bool = False) -> None:
    """Unload the IP-Adapters from `loaded`'s UNet (and Redux unless `keep_redux`)."""
    st = _states.get(loaded.pipe)
    if st is None:
        return
    if st.ip_slots:
        try:
            loaded.pipe.unload_ip_adapter()
        finally:
            st.ip_slots = ()
    for pipe in list(st.pipes):
        if getattr(pipe, "image_encoder", None) is not None:
            pipe.register_modules(image_encoder=None)
    st.pipes = weakref.WeakSet()
    st.encoder = None
    if not keep_redux:
        st.redux = None


def readiness(registry: models.ModelRegistry, family: str) -> str:
    """"" when `family`'s models can use reference images with what is installed, else a
    sentence saying what is missing or that the family takes none. Reads only the last
    scan (no files, no torch): cheap enough for the panel to ask before Generate."""
    from canvasai.backends.diffusion import families

    fam = families.find(family)
    method = fam.reference_method if fam is not None else ""
    label = fam.label if fam is not None else family
    usable = [m for m in registry.models() if m.usable]
    if method == IP_ADAPTER:
        if not any(m.kind == IPADAPTER and m.family in (family, UNKNOWN) for m in usable):
            file, _source = _IP_HINTS.get(family, ("an IP-Adapter", ""))
            return (f"Reference images with {label} models need an IP-Adapter ({file}) in the "
                    "models folder's ipadapter/ and its CLIP image encoder in clip_vision/.")
        if not any(m.kind == IMAGE_ENCODER and m.variant == "clip" for m in usable):
            return "The IP-Adapter needs its CLIP image encoder (ViT-H or ViT-bigG) in clip_vision/."
        return ""
    if method == REDUX_METHOD:
        redux = [m for m in usable if m.kind == REDUX]
        if not redux:
            return ("Reference images with Flux.1 models need Flux Redux (flux1-redux-dev."
                    "safetensors in style_models/ and its SigLIP encoder in clip_vision/).")
        if any((m.path / "model_index.json").is_file() for m in redux if m.format == "diffusers"):
            return ""
        if not any(m.kind == IMAGE_ENCODER and m.variant == "siglip" for m in usable):
            return ("Flux Redux needs its SigLIP image encoder (sigclip_vision_patch14_384."
                    "safetensors) in clip_vision/.")
        return ""
    if method == IMAGE_METHOD:
        return ""
    return f"{label} models take no reference images (only in Edit, with an edit model)."


# -------------------------------------------------------------------------------- applying


def _fit_area(img: np.ndarray, area: int, min_side: int, multiple: int) -> np.ndarray:
    """`img` scaled (aspect kept) to about `area` pixels, sides multiples of `multiple`."""
    import cv2

    h, w = img.shape[:2]
    f = math.sqrt(area / float(w * h)) if area else 1.0
    nw = max(min_side, multiple, int(round(w * f / multiple)) * multiple)
    nh = max(min_side, multiple, int(round(h * f / multiple)) * multiple)
    if (nw, nh) == (w, h):
        return img
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LANCZOS4
    return cv2.resize(img, (nw, nh), interpolation=interp)


def apply(
    manager: PipelineManager,
    loaded: LoadedModel,
    pipe: Any,
    request: GenerationRequest,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """`kwargs` for running `pipe` with `request`'s references (unchanged when none).

    Call right before the pipeline runs (after LoRAs, before regional prompts).
    """
    st = _state(loaded)
    plan = st.plan
    if plan is None or plan.request_key != id(request):
        plan = prepare(manager, loaded, request)
    if not plan.refs:
        return kwargs
    if plan.method == IP_ADAPTER:
        assert st.encoder is not None
        if getattr(pipe, "image_encoder", None) is not st.encoder.model:
            pipe.register_modules(image_encoder=st.encoder.model, feature_extractor=st.encoder.processor)
            st.pipes.add(pipe)
        pipe.set_ip_adapter_scale(list(plan.scales))
        return kwargs | {"ip_adapter_image": [_pil(reference_rgb(r)) for r in plan.refs]}
    if plan.method == REDUX_METHOD:
        return kwargs_with_redux(st, pipe, plan, kwargs)
    if plan.method == IMAGE_METHOD:
        import inspect

        w, h = int(kwargs.get("width") or 0), int(kwargs.get("height") or 0)
        fam = loaded.family
        images = [_pil(_fit_area(reference_rgb(r), w * h, fam.min_reference_side, fam.multiple))
                  for r in plan.refs]
        params = inspect.signature(type(pipe).__call__).parameters
        if "image_reference" in params:
            return kwargs | {"image_reference": images}
        if "image" in params and "image" not in kwargs:
            return kwargs | {"image": images}
        if "image" in params and isinstance(kwargs.get("image"), list):
            return kwargs | {"image": [*kwargs["image"], *images]}
        plan.notes.append(f"{type(pipe).__name__} takes no reference images: they were not used")
        return kwargs
    return kwargs


def finish(loaded: LoadedModel, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """`metadata` with the last job's reference notes and details added; None: nothing to add."""
    st = _states.get(loaded.pipe)
    plan = st.plan if st is not None else None
    if plan is None or (not plan.notes and not plan.meta):
        return None
    meta = dict(metadata)
    if plan.notes:
        meta["note"] = "; ".join([n for n in (meta.get("note"),) if n] + plan.notes)
    meta.update(plan.meta)
    return meta
