"""Inpaint: regenerate the masked pixels; every pixel outside the feathered mask is kept.

The model sees a context rectangle around the mask (masking.inpaint_context),
scaled to its native size and back. True inpainting models (9-channel UNet) get
the mask and masked image as inputs; a regular 4-channel model runs in diffusers'
legacy mask-blend mode, which works less well at the borders: the metadata says so.
The result is pasted back through a feathered mask (masking.composite), so
pixels beyond ``grow + feather`` of the mask are byte-identical to the input.

How the result goes back is the request's `BlendSettings` (grow, feather, colour match,
context padding), applied by `masking.composite`. Control layers run through the
family's ControlNet inpaint pipeline (`controls`), pasted back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from canvasai.backends import masking
from canvasai.backends.api import (
    BlendSettings,
    GenerationRequest,
    GenerationResult,
    JobContext,
    request_seeds,
)
from canvasai.backends.diffusion import common, references, regions
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, StepReporter
from canvasai.core.errors import GenerationError
from canvasai.core.geometry import Rect


def notes_for(loaded: LoadedModel) -> list[str]:
    """What the result's metadata says about how this model inpaints (mask-blend or not)."""
    note = loaded.route("inpaint").note
    return [note] if note else []


@dataclass
class InpaintJob:
    """Everything `inpaint_images` needs; outpaint and sketch build one too."""

    image: np.ndarray  # H x W x 3|4 uint8, full input
    mask: np.ndarray  # H x W uint8 0/255
    region: Rect  # where the model works
    work: tuple[int, int]  # (w, h) the model runs at
    blend: BlendSettings


def plan(
    request: GenerationRequest, image: np.ndarray, mask: np.ndarray, loaded: LoadedModel
) -> InpaintJob:
    if not mask.any():
        raise GenerationError("the mask is empty: paint the area to regenerate first")
    h, w = image.shape[:2]
    region = masking.inpaint_context(
        masking.mask_bbox(mask),
        Rect(0, 0, w, h),
        padding_frac=request.blend.padding,
        multiple=loaded.multiple,
    )
    work = common.work_size((region.w, region.h), loaded, request.native_resolution)
    return InpaintJob(image=image, mask=mask, region=region, work=work, blend=request.blend)


def inpaint_images(
    manager: PipelineManager,
    loaded: LoadedModel,
    request: GenerationRequest,
    ctx: JobContext,
    job: InpaintJob,
    seeds: tuple[int, ...],
    *,
    pipe: Any = None,
    extra: dict[str, Any] | None = None,
    masked_inputs: bool = True,
) -> tuple[list[np.ndarray], str, str]:
    """Run the batch and composite each result back. Returns (images, sampler, preview method).

    `pipe`/`extra` let sketch pass a ControlNet inpaint pipeline and its control image.
    Without `masked_inputs` the pipeline renders the whole context rectangle (a ControlNet
    pipeline that takes no image/mask) and only the paste-back limits it to the mask.
    """
    rows, cols = job.region.slices()
    crop = job.image[rows, cols]
    crop_mask = job.mask[rows, cols]
    size = (job.region.w, job.region.h)
    work_rgb = common.resize(common.rgb(crop), job.work)
    # nearest keeps the mask binary; dilate one latent cell so resampling never shrinks it
    work_mask = common.resize(crop_mask, job.work)
    work_mask = (masking.grow_mask(work_mask, 1) > 0).astype(np.uint8) * np.uint8(255)
    if pipe is None:
        pipe = manager.variant(loaded, loaded.route("inpaint").pipeline)
    sampler = manager.set_scheduler(loaded, pipe, request.scheduler)
    previewer = manager.previewer(loaded, pipe, job.work)
    full_alpha = common.alpha_of(job.image)
    frame: list[np.ndarray] = []  # one buffer for every preview: only the region changes

    def sink(step: int, small: np.ndarray) -> None:
        if not frame:
            frame.append(job.image.copy() if job.image.shape[2] == 4 else common.to_rgba(job.image))
        frame[0][rows, cols, :3] = common.resize(small, size)
        ctx.preview(step, frame[0])

    masked = {"image": common.pil(work_rgb), "mask_image": common.pil(work_mask),
              "strength": float(request.strength)}
    kwargs = (
        common.prompt_kwargs(request, loaded)
        | (masked if masked_inputs else {})
        | {
            "height": job.work[1],
            "width": job.work[0],
        }
        | loaded.family.extra_kwargs(type(pipe).__name__, job.work[0], job.work[1])
        | (extra or {})
    )
    kwargs = references.apply(manager, loaded, pipe, request, kwargs)  # reference images
    reporter = StepReporter(ctx, len(seeds), request.previews, previewer, sink)
    with regions.applied(pipe, loaded, request, job.work, job.region):  # regional prompts
        raw = common.run_batch(manager, loaded, pipe, ctx, reporter, seeds, kwargs)
    out = []
    for gen in raw:
        gen = common.resize(gen, size)
        full = job.image.copy()
        full[rows, cols] = masking.composite(crop, gen, crop_mask, job.blend)
        out.append(full if full.shape[2] == 4 else common.to_rgba(full, full_alpha))
    return out, sampler, previewer.method


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    image = common.require_image(request)
    mask = common.require_mask(request, image)
    if not 0.0 < request.strength <= 1.0:
        raise GenerationError(f"denoising strength must be in (0, 1], not {request.strength}")
    job = plan(request, image, mask, loaded)
    seeds = request_seeds(request)
    from canvasai.backends.diffusion import controls  # control layers

    cplan = controls.prepare(manager, loaded, request, (image.shape[1], image.shape[0]), ctx)
    pipe, extra, control_meta = None, None, {}
    if cplan is not None:
        pipe = cplan.pipeline(manager, loaded, "controlnet_inpaint")
        extra = cplan.kwargs(loaded, pipe, job.work, job.region, takes_image=True)
        control_meta = cplan.metadata()
    images, sampler, preview = inpaint_images(
        manager, loaded, request, ctx, job, seeds, pipe=pipe, extra=extra
    )
    notes = notes_for(loaded) + (cplan.notes if cplan is not None else [])
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
        work_size=list(job.work),
        inpaint_model=loaded.is_true_inpaint,
        **control_meta,
    )
    return common.result(images, seeds, meta)
