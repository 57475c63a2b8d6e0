"""`DiffusersBackend`: resolves the request's model, loads it, dispatches by task."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from canvasai.backends.api import GenerationRequest, GenerationResult, JobContext, Task
from canvasai.backends.device import free_memory, is_out_of_memory
from canvasai.backends.diffusion import controls, references
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.backends.loras import split_prompt
from canvasai.backends.models import (
    CONTROLNET,
    REFUSED,
    SUPPORTED_FAMILIES,
    TAESD,
    UNSUPPORTED,
    UPSCALER,
    VAE,
    ModelInfo,
    ModelRegistry,
    describe,
)
from canvasai.core.errors import GenerationError, ModelError

TASK_MODULES = {
    Task.TXT2IMG: "canvasai.backends.diffusion.txt2img",
    Task.IMG2IMG: "canvasai.backends.diffusion.img2img",
    Task.INPAINT: "canvasai.backends.diffusion.inpaint",
    Task.OUTPAINT: "canvasai.backends.diffusion.outpaint",
    Task.SKETCH: "canvasai.backends.diffusion.sketch",
    Task.UPSCALE: "canvasai.backends.diffusion.upscale",
    Task.EDIT: "canvasai.backends.diffusion.edit",
}


def check_main_model(info: ModelInfo, task: Task) -> None:
    """Raise `ModelError` when `info` cannot be the main model of a `task` job."""
    if info.kind == REFUSED:
        raise ModelError(f"{info.name} was not loaded: {info.note}")
    if info.kind == UNSUPPORTED:
        raise ModelError(f"{info.name} cannot be used: {info.note or 'unsupported model'}")
    if info.kind == CONTROLNET:
        raise ModelError(
            f"{info.name} is a ControlNet, not a main model: pick a Stable Diffusion model "
            "as the model and this one as the ControlNet of a sketch job."
        )
    if info.kind in (TAESD, VAE):
        raise ModelError(f"{info.name} is a {info.kind.upper()} (autoencoder), not a main model.")
    if info.kind == UPSCALER and task != Task.UPSCALE:
        raise ModelError(f"{info.name} is an x4 upscaler: it can only be used to upscale.")
    if info.kind != UPSCALER and info.family not in SUPPORTED_FAMILIES:
        raise ModelError(f"{describe(info)}: this model family is not supported.")


class DiffusersBackend:
    """Implements `canvasai.backends.api.Backend` with diffusers pipelines.

    Without a `registry` it resolves models against THE registry
    (`canvasai.backends.models.registry()`), looked up again for every job: never a
    stale copy, and a settings change takes effect on the next job.
    """

    name = "diffusers"

    def __init__(
        self, registry: ModelRegistry | None = None, manager: PipelineManager | None = None
    ) -> None:
        self.manager = manager or PipelineManager(registry)

    @property
    def registry(self) -> ModelRegistry:
        """The registry the pipeline manager loads from (one decision, in the manager)."""
        return self.manager.registry

    def resolve(self, request: GenerationRequest) -> ModelInfo:
        info = self.registry.resolve(request.model)
        check_main_model(info, request.task)
        return info

    def _load(self, info: ModelInfo, ctx: JobContext) -> LoadedModel:
        try:
            return self.manager.load(info, ctx)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            ctx.note("out of memory while loading: unloading everything and retrying")
            self.manager.unload()
            free_memory()
            try:
                return self.manager.load(info, ctx)
            except Exception as exc2:
                if is_out_of_memory(exc2):
                    raise GenerationError(
                        f"Not enough memory to load {info.name} on {self.manager.device.describe()}."
                    ) from exc2
                raise

    def run(self, request: GenerationRequest, ctx: JobContext) -> GenerationResult:
        module_name = TASK_MODULES.get(request.task)
        if module_name is None:
            raise GenerationError(f"unknown task {request.task!r}")
        info = self.resolve(request)
        controls.check_before_load(self.registry, info, request)  # before any weights load
        ctx.check_cancelled()
        loaded = self._load(info, ctx)
        ctx.check_cancelled()
        prompt, tagged = split_prompt(request.prompt)
        specs = {s.name: s for s in [*tagged, *request.loras]}  # the request's own win
        applied = self.manager.apply_loras(loaded, list(specs.values()))
        if tagged:
            request = dataclasses.replace(request, prompt=prompt)
        references.prepare(self.manager, loaded, request)  # adapters in (or out) before the task
        module: Any = importlib.import_module(module_name)
        result = module.run(self.manager, loaded, request, ctx)
        if applied:
            meta = dict(result.metadata) | {"loras": applied}
            result = dataclasses.replace(result, metadata=meta)
        ref_meta = references.finish(loaded, dict(result.metadata))
        if ref_meta is not None:
            result = dataclasses.replace(result, metadata=ref_meta)
        return result
