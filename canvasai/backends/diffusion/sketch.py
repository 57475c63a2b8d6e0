"""Sketch -> image with ControlNets (scribble, line art, soft edge, canny, depth, pose).

Every control layer of the request is applied together (`controls`); the first is the
sketch and sets the size when there is no image. Without a mask the whole picture is
generated from the control maps (ControlNet txt2img). With ``request.image`` and
``request.mask`` only the masked area is regenerated (ControlNet inpaint pipeline) and
pixels outside the feathered mask stay byte-identical; a family without a ControlNet
inpaint pipeline renders the context rectangle and the paste-back limits it to the mask.
Each ControlNet is its control's ``model`` (name or path) or the first installed one of
the right family and kind.
"""

from __future__ import annotations

from canvasai.backends.api import (
    ControlSettings,
    GenerationRequest,
    GenerationResult,
    JobContext,
    request_seeds,
)
from canvasai.backends.diffusion import common, controls, inpaint
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.backends.models import ModelInfo
from canvasai.core.errors import GenerationError


def resolve_controlnet(
    manager: PipelineManager, loaded: LoadedModel, control: ControlSettings
) -> ModelInfo:
    """The ControlNet for one control layer (see `controls.resolve_controlnet`)."""
    return controls.resolve_controlnet(manager.registry, loaded, control)


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
    if request.mask is None or base is None:
        work = common.work_size((w, h), loaded, request.native_resolution)
        return controls.generate(manager, loaded, request, ctx, (w, h), work)
    if loaded.family.has("controlnet_inpaint"):
        return inpaint.run(manager, loaded, request, ctx)
    return _render_in_mask(manager, loaded, request, ctx)


def _render_in_mask(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    """A family without ControlNet inpainting: render the context rectangle from the
    control maps, paste it back through the mask."""
    image = common.require_image(request)
    mask = common.require_mask(request, image)
    job = inpaint.plan(request, image, mask, loaded)
    seeds = request_seeds(request)
    plan = controls.prepare(manager, loaded, request, (image.shape[1], image.shape[0]), ctx)
    assert plan is not None
    pipe = plan.pipeline(manager, loaded, "controlnet")
    extra = plan.kwargs(loaded, pipe, job.work, job.region, takes_image=False)
    images, sampler, preview = inpaint.inpaint_images(
        manager, loaded, request, ctx, job, seeds, pipe=pipe, extra=extra, masked_inputs=False
    )
    notes = [
        "the sketch was rendered over the masked area's context and pasted back through the "
        "mask (no ControlNet inpainting for this family)",
        *inpaint.notes_for(loaded),
        *plan.notes,
    ]
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (image.shape[1], image.shape[0]),
        sampler,
        preview,
        notes,
        region=[job.region.x, job.region.y, job.region.w, job.region.h],
        **plan.metadata(),
    )
    return common.result(images, seeds, meta)
