"""Text -> image. A 9-channel inpainting model runs as a full-mask inpaint of a grey canvas."""

from __future__ import annotations

import numpy as np

from canvasai.backends.base import JobContext
from canvasai.backends.diffusion import common
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, StepReporter
from canvasai.generation.requests import GenerationRequest, GenerationResult


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    native = loaded.native_size
    out_w = int(request.width or native)
    out_h = int(request.height or native)
    w, h = common.round8(out_w), common.round8(out_h)
    seeds = common.seeds_for(request)
    notes: list[str] = []
    kwargs = common.prompt_kwargs(request) | {"height": h, "width": w}
    if loaded.is_true_inpaint:
        pipe = manager.variant(loaded, "inpaint")
        grey = np.full((h, w, 3), 127, np.uint8)
        kwargs |= common.full_mask_inpaint_kwargs(grey) | {"strength": 1.0}
        notes.append("inpainting model: generated as a full-canvas inpaint")
    else:
        pipe = manager.variant(loaded, "txt2img")
    sampler = manager.set_scheduler(loaded, pipe, request.scheduler)
    previewer = manager.previewer(loaded)

    def sink(step: int, small: np.ndarray) -> None:
        ctx.preview(step, common.to_rgba(common.resize(small, (out_w, out_h))))

    reporter = StepReporter(ctx, len(seeds), request.previews, previewer, sink)
    images = common.run_batch(manager, loaded, pipe, ctx, reporter, seeds, kwargs)
    images = [common.to_rgba(common.resize(im, (out_w, out_h))) for im in images]
    meta = common.metadata(
        request, loaded, manager, seeds, (out_w, out_h), sampler, previewer.method, notes
    )
    return common.result(images, seeds, meta)
