"""Outpaint: grow the canvas, pre-fill the new area, inpaint it with a strip of context.

The enlarged canvas and its new-area mask come from masking.outpaint_canvas
(edge / infill / blur / solid prefill); the inpaint flow then works on a context
rectangle that includes part of the existing picture, so the new area continues
it. Original pixels farther than the feather width from the seam stay byte-identical.
"""

from __future__ import annotations

from canvasai.backends import masking
from canvasai.backends.api import GenerationRequest, GenerationResult, JobContext, request_seeds
from canvasai.backends.diffusion import common, inpaint
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.core.errors import GenerationError


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    image = common.require_image(request)
    s = request.outpaint
    assert s is not None  # the request validated it
    try:
        canvas, mask = masking.outpaint_canvas(image, s.left, s.right, s.top, s.bottom, s.prefill)
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc
    job = inpaint.plan(request, canvas, mask, loaded)
    seeds = request_seeds(request)
    images, sampler, preview = inpaint.inpaint_images(manager, loaded, request, ctx, job, seeds)
    notes = inpaint.notes_for(loaded)
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (canvas.shape[1], canvas.shape[0]),
        sampler,
        preview,
        notes,
        margins=[s.left, s.right, s.top, s.bottom],
        prefill=s.prefill,
        offset=[s.left, s.top],
        region=[job.region.x, job.region.y, job.region.w, job.region.h],
        work_size=list(job.work),
        inpaint_model=loaded.is_true_inpaint,
    )
    return common.result(images, seeds, meta)
