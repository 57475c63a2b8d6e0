"""Outpaint: grow the canvas, pre-fill the new area, inpaint it with a strip of context.

The enlarged canvas and its new-area mask come from planning.outpaint_canvas
(edge / infill / blur / solid prefill); the inpaint flow then works on a context
rectangle that includes part of the existing picture, so the new area continues
it. Original pixels farther than the feather width from the seam stay byte-identical.
"""

from __future__ import annotations

from canvasai.backends.base import JobContext
from canvasai.backends.diffusion import common, inpaint
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.core.errors import GenerationError
from canvasai.generation import planning
from canvasai.generation.requests import GenerationRequest, GenerationResult

MAX_OUTPUT_PIXELS = 8192 * 8192


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    image = common.require_image(request)
    s = request.outpaint
    if s is None:
        raise GenerationError("outpaint needs margins (left/right/top/bottom)")
    margins = (s.left, s.right, s.top, s.bottom)
    if min(margins) < 0 or max(margins) == 0:
        raise GenerationError("outpaint needs at least one positive margin and none negative")
    h, w = image.shape[:2]
    if (h + s.top + s.bottom) * (w + s.left + s.right) > MAX_OUTPUT_PIXELS:
        raise GenerationError("the outpainted image would be too large")
    try:
        canvas, mask = planning.outpaint_canvas(image, s.left, s.right, s.top, s.bottom, s.prefill)
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc
    job = inpaint.plan(request, canvas, mask, loaded)
    seeds = common.seeds_for(request)
    images, sampler, preview = inpaint.inpaint_images(manager, loaded, request, ctx, job, seeds)
    notes = [] if loaded.is_true_inpaint else [inpaint.LEGACY_NOTE]
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (canvas.shape[1], canvas.shape[0]),
        sampler,
        preview,
        notes,
        margins=list(margins),
        prefill=s.prefill,
        offset=[s.left, s.top],
        region=[job.region.x, job.region.y, job.region.w, job.region.h],
        work_size=list(job.work),
        inpaint_model=loaded.is_true_inpaint,
    )
    return common.result(images, seeds, meta)
