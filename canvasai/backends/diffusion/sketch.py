"""Sketch -> image with a ControlNet (scribble, line art, canny, depth).

Without a mask the whole picture is generated from the control map
(ControlNet txt2img). With ``request.image`` and ``request.mask`` only the masked
area is regenerated (ControlNet inpaint pipeline) and pixels outside the
feathered mask stay byte-identical. The ControlNet is ``request.control.model``
(name or path) or the first installed one of the right family and kind.
"""

from __future__ import annotations

import numpy as np

from canvasai.backends.api import (
    ControlSettings,
    GenerationRequest,
    GenerationResult,
    JobContext,
    request_seeds,
)
from canvasai.backends.diffusion import common, inpaint
from canvasai.backends.diffusion.control_maps import control_map
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.backends.models import CONTROLNET, ModelInfo, describe
from canvasai.core.errors import GenerationError, ModelError


def resolve_controlnet(
    manager: PipelineManager, loaded: LoadedModel, control: ControlSettings
) -> ModelInfo:
    family = loaded.info.family
    kind = control.kind.value
    if control.model:
        info = manager.registry.resolve(control.model)
        if info.kind != CONTROLNET:
            raise ModelError(f"{describe(info)} is not a ControlNet.")
    else:
        found = manager.registry.find(CONTROLNET, family=family, control_type=kind)
        if found is None:
            raise ModelError(
                f"No {kind} ControlNet for {family} models is installed. Put one (a diffusers "
                f"folder or .safetensors with '{kind}' in its name) in the models folder, "
                "or choose one explicitly."
            )
        info = found
    if not info.usable:
        raise ModelError(f"{describe(info)}")
    if info.family not in (family, "unknown"):
        raise ModelError(
            f"ControlNet {info.name} is for {info.family} models but {loaded.info.name} is {family}."
        )
    return info


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    control = request.control
    if control is None:
        raise GenerationError("sketch needs a control image (the sketch layer)")
    src = control.image
    if src is None or src.ndim != 3 or src.shape[2] not in (3, 4):
        raise GenerationError("the sketch must be an H x W x 3|4 uint8 image")
    base = request.image
    w, h = (base.shape[1], base.shape[0]) if base is not None else (src.shape[1], src.shape[0])
    if not loaded.family.controlnet_class:
        raise GenerationError(
            f"Sketch→Render with a {loaded.family.label} model is not supported yet: pick a "
            "model of a family with ControlNets (SD 1.x, SDXL, Flux.1, SD 3.5, Z-Image, Qwen-Image)."
        )
    cmap, map_note = control_map(control.kind, common.resize(src, (w, h)), control.preprocess)
    cn_info = resolve_controlnet(manager, loaded, control)
    net = manager.controlnet(cn_info)
    seeds = request_seeds(request)
    notes = [n for n in (map_note,) if n]
    cn_kw = {"controlnet_conditioning_scale": float(control.scale)}
    key = str(cn_info.path)
    extra_meta = {"controlnet": cn_info.name, "control": control.kind.value}

    if request.mask is not None and base is not None:
        image = common.require_image(request)
        mask = common.require_mask(request, image)
        job = inpaint.plan(request, image, mask, loaded)
        rows, cols = job.region.slices()
        work_map = common.resize(cmap[rows, cols], job.work)
        masked = loaded.family.has("controlnet_inpaint")
        pipe = manager.variant(
            loaded, "controlnet_inpaint" if masked else "controlnet", controlnet=net, key=key
        )
        if not masked:
            notes.append("the sketch was rendered over the masked area's context and pasted "
                         "back through the mask (no ControlNet inpainting for this family)")
        images, sampler, preview = inpaint.inpaint_images(
            manager,
            loaded,
            request,
            ctx,
            job,
            seeds,
            pipe=pipe,
            extra=loaded.family.control_kwargs(common.pil(work_map), inpaint=masked) | cn_kw,
            masked_inputs=masked,
        )
        notes += inpaint.notes_for(loaded)
        meta = common.metadata(
            request,
            loaded,
            manager,
            seeds,
            (w, h),
            sampler,
            preview,
            notes,
            region=[job.region.x, job.region.y, job.region.w, job.region.h],
            **extra_meta,
        )
        return common.result(images, seeds, meta)

    ww, wh = common.work_size((w, h), loaded, request.native_resolution)
    work_map = common.resize(cmap, (ww, wh))
    kwargs = common.prompt_kwargs(request, loaded) | {"height": wh, "width": ww} | cn_kw
    if loaded.is_true_inpaint:
        pipe = manager.variant(loaded, "controlnet_inpaint", controlnet=net, key=key)
        grey = np.full((wh, ww, 3), 127, np.uint8)
        kwargs |= (
            common.full_mask_inpaint_kwargs(grey)
            | loaded.family.control_kwargs(common.pil(work_map), inpaint=True)
            | {"strength": 1.0}
        )
        notes.append("inpainting model: generated as a full-canvas ControlNet inpaint")
    else:
        pipe = manager.variant(loaded, "controlnet", controlnet=net, key=key)
        kwargs |= loaded.family.control_kwargs(common.pil(work_map), inpaint=False)
    images, sampler, preview_method = common.generate_at(
        manager, loaded, pipe, request, ctx, seeds, kwargs, (w, h)
    )
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (w, h),
        sampler,
        preview_method,
        notes,
        work_size=[ww, wh],
        **extra_meta,
    )
    return common.result(images, seeds, meta)
