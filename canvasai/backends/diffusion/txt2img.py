"""Text -> image. A model trained to inpaint (SD 9-channel, Flux Fill) runs as a full-mask
inpaint of a grey canvas; the family decides (`Family.route`). With control layers the
family's ControlNet pipeline runs them all (`controls.generate`)."""

from __future__ import annotations

import numpy as np

from canvasai.backends.api import GenerationRequest, GenerationResult, JobContext, request_seeds
from canvasai.backends.diffusion import common, controls, live
from canvasai.backends.diffusion.families.base import MODE_TXT2IMG
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    if live.handles(request):  # a live-painting frame: speed first (live.py)
        return live.run(manager, loaded, request, ctx)
    native = loaded.native_size
    out_w = int(request.width or native)
    out_h = int(request.height or native)
    m = loaded.multiple
    w, h = common.round_to(out_w, m), common.round_to(out_h, m)
    if request.controls:
        res = controls.generate(manager, loaded, request, ctx, (out_w, out_h), (w, h))
        return live.mark_vae(res) if request.live else res
    seeds = request_seeds(request)
    route = loaded.route("txt2img")
    pipe = manager.variant(loaded, route.pipeline)
    grey = None if route.mode == MODE_TXT2IMG else np.full((h, w, 3), 127, np.uint8)
    kwargs = (
        common.prompt_kwargs(request, loaded)
        | {"height": h, "width": w}
        | common.route_kwargs(route, grey, 1.0)
    )
    notes = [route.note] if route.note else []
    images, sampler, preview = common.generate_at(
        manager, loaded, pipe, request, ctx, seeds, kwargs, (out_w, out_h)
    )
    meta = common.metadata(
        request, loaded, manager, seeds, (out_w, out_h), sampler, preview, notes, pipeline=route.pipeline
    )
    return common.result(images, seeds, meta)
