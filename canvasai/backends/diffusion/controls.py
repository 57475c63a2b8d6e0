"""Control layers: every control of a request applied together (one or a MultiControlNet).

How to use it (txt2img / img2img / inpaint / sketch call it; so can a benchmark):

    plan = controls.prepare(manager, loaded, request, (w, h))   # None when no controls
    pipe = plan.pipeline(manager, loaded, "controlnet")         # txt2img; or
    #      "controlnet_img2img" (image + strength) / "controlnet_inpaint" (image + mask)
    kwargs |= plan.kwargs(loaded, pipe, work_size, region=None, takes_image=False)
    ... run pipe(**kwargs) ...
    meta = common.metadata(..., plan.notes, **plan.metadata())

`prepare` decides everything before any weights load: each control's ControlNet
(`ControlSettings.model`, else the first installed one of the model's family and the
control's kind), refused with a `ModelError` when it belongs to another family; the
family must run that many at once (`Family.multi_controlnet_class`). Then it makes each
control map at the output size (`canvasai.backends.preprocessors.preprocess`: canny,
line art, scribble, soft edge in-process; depth / pose with their models) and loads the
ControlNets (kept between jobs while the same set is used).

`pipeline` is the family's pipeline for the task key (`Family.pipelines`), made with
``from_pipe`` around the one ControlNet or the family's MultiControlNet, cached per set;
a family without it gets a `GenerationError` naming the family. `kwargs` gives the maps,
strengths and start/end ranges (``controlnet_conditioning_scale``,
``control_guidance_start`` / ``_end``: scalars for one control, lists for several) under
the names the family's pipelines take (`Family.control_kwargs`). Paste-back stays with
the task (`masking.composite`), so pixels outside an inpaint mask are kept.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canvasai.backends import preprocessors
from canvasai.backends.api import (
    ControlSettings,
    GenerationRequest,
    GenerationResult,
    JobContext,
    Task,
    request_seeds,
)
from canvasai.backends.diffusion import common, families
from canvasai.backends.diffusion.families.base import MODE_FULL_MASK, MODE_IMG2IMG
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, pipeline_class
from canvasai.backends.models import CONTROLNET, UNKNOWN, ModelInfo, ModelRegistry, describe
from canvasai.core.errors import GenerationError, ModelError
from canvasai.core.geometry import Rect

#: task key -> what the person was doing (for messages)
_WHAT = {
    "controlnet": "Generating",
    "controlnet_img2img": "Refining",
    "controlnet_inpaint": "Inpainting",
}


def resolve_controlnet(
    registry: ModelRegistry, loaded: LoadedModel, control: ControlSettings, index: int = 0
) -> ModelInfo:
    """The ControlNet for `control` with `loaded`'s model; registry look-ups only, nothing
    is loaded. Raises `ModelError` for a missing one or one of another family."""
    return _resolve(registry, loaded.info, loaded.family.label, control, index)


def _resolve(
    registry: ModelRegistry, model: ModelInfo, label: str, control: ControlSettings, index: int
) -> ModelInfo:
    family = model.family
    kind = control.kind.value
    if control.model:
        info = registry.resolve(control.model)
        if info.kind != CONTROLNET:
            raise ModelError(f"{describe(info)} is not a ControlNet (control layer {index + 1}).")
    else:
        found = registry.find(CONTROLNET, family=family, control_type=kind)
        if found is None:
            raise ModelError(
                f"No {kind} ControlNet for {label} models is installed. Put one (a diffusers "
                f"folder or .safetensors with '{kind}' in its name) in the models folder, "
                "or choose one explicitly."
            )
        info = found
    if not info.usable:
        raise ModelError(describe(info))
    if info.family not in (family, UNKNOWN):
        raise ModelError(
            f"ControlNet {info.name} is for {families.label(info.family)} models but "
            f"{model.name} is a {label} model: choose a {label} {kind} ControlNet "
            f"for control layer {index + 1}."
        )
    return info


#: the tasks that apply control layers (outpaint, edit and upscale ignore them)
CONTROL_TASKS = (Task.SKETCH, Task.TXT2IMG, Task.IMG2IMG, Task.INPAINT)


def check_before_load(registry: ModelRegistry, model: ModelInfo, request: GenerationRequest) -> None:
    """Refuse, before the main model loads, control layers its family cannot take and
    ControlNets that are missing or of another family (registry look-ups only)."""
    settings = tuple(request.controls)
    if not settings or request.task not in CONTROL_TASKS:
        return
    fam = families.find(model.family)
    if fam is None:
        return  # an unknown family: the load says what it is
    _check_family(fam, len(settings))
    for i, c in enumerate(settings):
        _resolve(registry, model, fam.label, c, i)


def _check_family(fam: Any, count: int) -> None:
    if not fam.controlnet_class:
        raise GenerationError(
            f"Control layers with a {fam.label} model are not supported yet: pick a model of "
            "a family with ControlNets (SD 1.x, SDXL, Flux.1, SD 3.5, Z-Image, Qwen-Image), "
            "or turn the control layers off."
        )
    if count > 1 and not fam.multi_controlnet_class:
        raise GenerationError(
            f"{fam.label} models take one control layer at a time here, and {count} "
            "are on: turn all but one off."
        )


# ControlNets of the current set, per manager: the manager keeps one, a set needs all
_kept: weakref.WeakKeyDictionary[PipelineManager, dict[str, Any]] = weakref.WeakKeyDictionary()


def load_controlnets(manager: PipelineManager, infos: tuple[ModelInfo, ...],
                     ctx: JobContext | None = None) -> tuple[Any, ...]:
    """The ControlNets of `infos`, loaded once and kept while the same ones are used (a
    cancel of the job `ctx` ends the wait for a load at once)."""
    kept = _kept.get(manager, {})
    now: dict[str, Any] = {}
    for info in infos:
        key = str(info.path)
        net = now.get(key) or kept.get(key)
        if net is None:
            net = manager.controlnet(info, ctx)
        now[key] = net
    _kept[manager] = now
    return tuple(now[str(i.path)] for i in infos)


@dataclass
class ControlPlan:
    """The control layers of one job, resolved, preprocessed and loaded."""

    settings: tuple[ControlSettings, ...]
    infos: tuple[ModelInfo, ...]
    maps: tuple[np.ndarray, ...]  # H x W x 3 uint8 at the job's output size
    nets: tuple[Any, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Identifies the set of ControlNets (the cache key of its task pipelines)."""
        return "|".join(str(i.path) for i in self.infos)

    def pipeline(self, manager: PipelineManager, loaded: LoadedModel, task_key: str) -> Any:
        """`loaded`'s pipeline for `task_key` ("controlnet", "controlnet_img2img",
        "controlnet_inpaint") around these ControlNets."""
        fam = loaded.family
        if not fam.has(task_key):
            what = _WHAT.get(task_key, task_key)
            raise GenerationError(
                f"{what} with control layers is not available for {fam.label} models here "
                f"(no {fam.label} ControlNet pipeline for it): turn the control layers off, "
                "or use an SD 1.x or SDXL model."
            )
        if len(self.nets) == 1:
            net: Any = self.nets[0]
        else:
            net = pipeline_class(fam.multi_controlnet_class)(list(self.nets))
        return manager.variant(loaded, task_key, controlnet=net, key=self.key)

    def work_maps(self, size: tuple[int, int], region: Rect | None = None) -> list[np.ndarray]:
        """The maps cropped to `region` (of the output area) and resized to `size` (w, h)."""
        out = []
        for m in self.maps:
            if region is not None:
                rows, cols = region.slices()
                m = m[rows, cols]
            out.append(np.ascontiguousarray(common.resize(m, size)))
        return out

    def kwargs(
        self,
        loaded: LoadedModel,
        pipe: Any,
        size: tuple[int, int],
        region: Rect | None = None,
        *,
        takes_image: bool = False,
    ) -> dict[str, Any]:
        """The control arguments of `pipe` at work `size`; `takes_image`: the pipeline also
        reads an init image (img2img, inpaint), so the maps go under its control name."""
        maps = [common.pil(m) for m in self.work_maps(size, region)]
        one = len(maps) == 1

        def each(values: list[float]) -> Any:
            return values[0] if one else values

        kw = loaded.family.control_kwargs(maps[0] if one else maps, inpaint=takes_image)
        ranges = {
            "control_guidance_start": each([float(c.start) for c in self.settings]),
            "control_guidance_end": each([float(c.end) for c in self.settings]),
        }
        kw["controlnet_conditioning_scale"] = each([float(c.scale) for c in self.settings])
        taken = common.accepted_kwargs(pipe, ranges)
        partial = any(c.start > 0.0 or c.end < 1.0 for c in self.settings)
        if partial and len(taken) < len(ranges):
            note = (f"{loaded.family.label} ControlNets act over all steps here: the control "
                    "layers' start/end range was not applied")
            if note not in self.notes:
                self.notes.append(note)
        return kw | taken

    def metadata(self) -> dict[str, Any]:
        """What the result records: the first ControlNet (as before) and every layer."""
        return {
            "controlnet": self.infos[0].name,
            "control": self.settings[0].kind.value,
            "controls": [
                {
                    "kind": c.kind.value,
                    "controlnet": info.name,
                    "scale": float(c.scale),
                    "start": float(c.start),
                    "end": float(c.end),
                    "preprocess": bool(c.preprocess),
                }
                for c, info in zip(self.settings, self.infos, strict=True)
            ],
        }


def prepare(
    manager: PipelineManager,
    loaded: LoadedModel,
    request: GenerationRequest,
    size: tuple[int, int],
    ctx: JobContext | None = None,
) -> ControlPlan | None:
    """The request's control layers for an output of `size` (w, h); None without any.

    Checks the family and every ControlNet before loading anything, then preprocesses
    the maps (a cancel of the job `ctx` is honoured between them) and loads the
    ControlNets."""
    settings = tuple(request.controls)
    if not settings:
        return None
    _check_family(loaded.family, len(settings))
    registry = manager.registry
    infos = tuple(resolve_controlnet(registry, loaded, c, i) for i, c in enumerate(settings))
    maps, notes = [], []
    for c in settings:
        if ctx is not None:
            ctx.check_cancelled()
        src = common.resize(np.asarray(c.image), size)
        cmap, note = preprocessors.preprocess(
            c.kind, src, registry, device=manager.device.device, preprocess=c.preprocess
        )
        maps.append(np.ascontiguousarray(cmap[..., :3]))
        if note and note not in notes:
            notes.append(note)
    if ctx is not None:
        ctx.check_cancelled()
    nets = load_controlnets(manager, infos, ctx)
    return ControlPlan(settings, infos, tuple(maps), nets, notes)


def generate(
    manager: PipelineManager,
    loaded: LoadedModel,
    request: GenerationRequest,
    ctx: JobContext,
    size: tuple[int, int],
    work: tuple[int, int],
    *,
    image: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    strength: float = 1.0,
    **extra_meta: Any,
) -> GenerationResult:
    """A whole-picture job with the request's control layers: txt2img (no `image`), or
    img2img of `image` (RGB, already at `work` size) at `strength`. The family's route
    decides the pipeline: its ControlNet txt2img / img2img pipeline, or its ControlNet
    inpaint pipeline through a full mask (inpainting models). Returns the GenerationResult
    at `size` (w, h), with `alpha` put back."""
    plan = prepare(manager, loaded, request, size, ctx)
    assert plan is not None, "controls.generate needs a request with control layers"
    ww, wh = work
    route = loaded.route("img2img" if image is not None else "txt2img")
    notes = [route.note] if route.note else []
    if route.mode == MODE_FULL_MASK:  # an inpainting model repaints everything
        base = image if image is not None else np.full((wh, ww, 3), 127, np.uint8)
        key, takes_image = "controlnet_inpaint", True
        image_kw = common.full_mask_inpaint_kwargs(base) | {"strength": float(strength)}
    elif route.mode == MODE_IMG2IMG:
        assert image is not None
        key, takes_image = "controlnet_img2img", True
        image_kw = {"image": common.pil(image), "strength": float(strength)}
    else:
        key, takes_image, image_kw = "controlnet", False, {}
    pipe = plan.pipeline(manager, loaded, key)
    kwargs = (
        common.prompt_kwargs(request, loaded)
        | {"height": wh, "width": ww}
        | image_kw
        | plan.kwargs(loaded, pipe, (ww, wh), takes_image=takes_image)
    )
    seeds = request_seeds(request)
    images, sampler, preview = common.generate_at(
        manager, loaded, pipe, request, ctx, seeds, kwargs, size, alpha, work=(ww, wh)
    )
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        size,
        sampler,
        preview,
        notes + plan.notes,
        work_size=[ww, wh],
        pipeline=type(pipe).__name__,
        **(plan.metadata() | extra_meta),
    )
    return common.result(images, seeds, meta)
