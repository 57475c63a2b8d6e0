"""The contract between the generation service and a backend.

A backend runs one request on the worker thread. It reports through the
`JobContext` the service hands it, and must call `ctx.check_cancelled()` at least
once per denoising step (it raises `JobCancelled`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from canvasai.generation.requests import GenerationRequest, GenerationResult


class JobContext(Protocol):
    job_id: int

    def check_cancelled(self) -> None:
        """Raise `canvasai.core.errors.JobCancelled` if the job was cancelled."""

    def progress(self, step: int, total: int) -> None:
        """Report that `step` of `total` denoising steps are done (1-based)."""

    def wants_preview(self) -> bool:
        """True when a preview frame would be shown now (throttling); skip the work otherwise."""

    def preview(self, step: int, rgba: np.ndarray) -> None:
        """Hand over a preview frame: H x W x 4 uint8 covering the request's image area."""

    def note(self, message: str) -> None:
        """A human-readable status note (e.g. 'out of memory: retrying with VAE tiling')."""


class Backend(Protocol):
    name: str

    def run(self, request: GenerationRequest, ctx: JobContext) -> GenerationResult: ...
