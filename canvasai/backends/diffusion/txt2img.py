"""Text -> image. A 9-channel inpainting model runs as a full-mask inpaint of a grey canvas."""

from __future__ import annotations

import numpy as np

from canvasai.backends.api import GenerationRequest, GenerationResult, JobContext, request_seeds
from canvasai.backends.diffusion import common
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    native = loaded.native_size
    out_w = int(request.width or native)
    out_h = int(request.height or native)
    w, h = common.round8(out_w), common.round8(out_h)
    seeds = request_seeds(request)
    notes: list[str] = []
    kwargs = common.prompt_kwargs(request) | {"height": h, "width": w}
    if loaded.is_true_inpaint:
        pipe = manager.variant(loaded, "inpaint")
        grey = np.full((h, w, 3), 127, np.uint8)
        kwargs |= common.full_mask_inpaint_kwargs(grey) | {"strength": 1.0}
        notes.append("inpainting model: generated as a full-canvas inpaint")
    else:
        pipe = manager.variant(loaded, "txt2img")
    images, sampler, preview = common.generate_at(
        manager, loaded, pipe, request, ctx, seeds, kwargs, (out_w, out_h)
    )
    meta = common.metadata(request, loaded, manager, seeds, (out_w, out_h), sampler, preview, notes)
    return common.result(images, seeds, meta)
