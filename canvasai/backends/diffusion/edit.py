"""Edit by instruction ("make it night", "remove the lamp") with an edit model.

The family picks the pipeline (`Family.route("edit")`: Flux Kontext, Qwen-Image-Edit /
Edit-Plus, or Flux.2 Klein reading the picture as a reference). With a mask (the
selection) the model sees a context rectangle around it and its result is pasted
back through the feathered mask exactly like inpaint, so pixels outside are
bit-identical; without one the whole picture is edited. Reference images (other
layers or files) go to models that read several images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from canvasai.backends import masking
from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
    ReferenceKind,
    request_seeds,
)
from canvasai.backends.diffusion import common, inpaint
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, StepReporter
from canvasai.core.errors import GenerationError
from canvasai.core.geometry import Rect


def _references(request: GenerationRequest, loaded: LoadedModel, work: tuple[int, int]) -> tuple[list[Any], list[str]]:
    fam = loaded.family
    refs = [r for r in request.references if r.strength > 0]  # strength 0: left out
    notes = []
    if len(refs) < len(request.references):
        notes.append(f"{len(request.references) - len(refs)} reference image(s) of strength 0 left out")
    if fam.max_references and any(r.strength != 1.0 or r.kind != ReferenceKind.CONTENT for r in refs):
        notes.append(f"{fam.label} edits read reference images as they are: their strength and "
                     "style/composition setting are not used")
    if len(refs) > fam.max_references:
        if fam.max_references == 0:
            notes.append(f"{fam.label} edits read one picture: the reference images were not used")
        else:
            notes.append(f"only the first {fam.max_references} reference images were used")
        refs = refs[: fam.max_references]
    return [_at_least(common.resize(common.rgb(r.image), work), fam.min_reference_side) for r in refs], notes


def _at_least(img: np.ndarray, side: int) -> Any:
    """`img` as a PIL image, enlarged (aspect kept) when a side is below `side`."""
    h, w = img.shape[:2]
    if side and min(h, w) < side:
        f = side / min(h, w)
        img = common.resize(img, (max(side, round(w * f)), max(side, round(h * f))))
    return common.pil(img)


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    image = common.require_image(request)
    route = loaded.route("edit")
    h, w = image.shape[:2]
    if request.mask is not None:
        mask = common.require_mask(request, image)
        if not mask.any():
            raise GenerationError("the selection is empty: select the area to edit, or edit it all")
        job = inpaint.plan(request, image, mask, loaded)
    else:
        mask = np.full((h, w), 255, np.uint8)
        region = Rect(0, 0, w, h)
        work = common.work_size((w, h), loaded, request.native_resolution)
        job = inpaint.InpaintJob(image=image, mask=mask, region=region, work=work, blend=request.blend)
    rows, cols = job.region.slices()
    crop = job.image[rows, cols]
    crop_mask = job.mask[rows, cols]
    size = (job.region.w, job.region.h)
    pipe = manager.variant(loaded, route.pipeline)
    sampler = manager.set_scheduler(loaded, pipe, request.scheduler)
    previewer = manager.previewer(loaded, pipe, job.work)
    refs, notes = _references(request, loaded, job.work)
    work_rgb = common.resize(common.rgb(crop), job.work)
    kwargs = (
        common.prompt_kwargs(request, loaded)
        | loaded.family.edit_kwargs(
            [_at_least(work_rgb, loaded.family.min_reference_side), *refs], loaded.info.variant
        )
        | {"height": job.work[1], "width": job.work[0]}
    )
    whole = request.mask is None
    alpha = common.alpha_of(image)

    frame: list[np.ndarray] = []  # one buffer for every preview: only the region changes

    def sink(step: int, small: np.ndarray) -> None:
        if not frame:
            frame.append(image.copy() if image.shape[2] == 4 else common.to_rgba(image))
        frame[0][rows, cols, :3] = common.resize(small, size)
        ctx.preview(step, frame[0])

    seeds = request_seeds(request)
    reporter = StepReporter(ctx, len(seeds), request.previews, previewer, sink)
    raw = common.run_batch(manager, loaded, pipe, ctx, reporter, seeds, kwargs)
    images = []
    for gen in raw:
        gen = common.resize(gen, size)
        if whole:
            images.append(common.to_rgba(gen, alpha))
            continue
        full = image.copy()
        full[rows, cols] = masking.composite(crop, gen, crop_mask, job.blend)
        images.append(full if full.shape[2] == 4 else common.to_rgba(full, alpha))
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (w, h),
        sampler,
        previewer.method,
        notes,
        region=[job.region.x, job.region.y, job.region.w, job.region.h],
        work_size=list(job.work),
        pipeline=route.pipeline,
        instruction=request.prompt,
        references=len(refs),
        selection=not whole,
    )
    return common.result(images, seeds, meta)
