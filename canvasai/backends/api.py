"""Frozen, self-contained generation requests and results.

The GUI thread snapshots everything a job needs into a `GenerationRequest`; the
worker never touches the live document. Arrays are copied on construction and
made read-only so a request can be shared across threads safely.

Pixel conventions (everywhere in generation/ and backends/):
- images: ``H x W x 4`` uint8 straight (non-premultiplied) RGBA, or ``H x W x 3`` RGB;
- masks: ``H x W`` uint8, 255 = regenerate this pixel, 0 = keep it.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

CLASSIC_MODEL = "classic"


class Task(str, enum.Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    SKETCH = "sketch"
    UPSCALE = "upscale"


class ControlKind(str, enum.Enum):
    SCRIBBLE = "scribble"
    LINEART = "lineart"
    CANNY = "canny"
    DEPTH = "depth"


def _frozen_array(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ControlSettings:
    """ControlNet input for sketch -> image."""

    kind: ControlKind
    image: np.ndarray  # H x W x 3/4 uint8: the sketch or photo
    model: str | None = None  # ControlNet registry name or path; None = pick by kind
    preprocess: bool = True  # run the matching preprocessor (canny edges, ...) first
    scale: float = 1.0  # controlnet_conditioning_scale

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image))


@dataclass(frozen=True)
class OutpaintSettings:
    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    prefill: str = "infill"  # "edge" | "infill" | "blur" | "solid"


@dataclass(frozen=True)
class UpscaleSettings:
    scale: int = 2  # 2 or 4
    tile: int = 512  # tile size in output pixels for tiled refine
    overlap: int = 64
    refine_strength: float = 0.3  # for tiled diffusion refine after resize
    sharpen: float = 0.0  # classic: unsharp-mask amount, 0 = off


@dataclass(frozen=True)
class GenerationRequest:
    task: Task
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    prompt: str = ""
    negative_prompt: str = ""
    model: str = CLASSIC_MODEL  # registry name, path to folder/file, or "classic"
    steps: int = 20
    guidance: float = 7.0
    strength: float = 1.0  # img2img/inpaint denoising strength
    seed: int | None = None  # None = random; the chosen seed is reported back
    batch_size: int = 1
    scheduler: str = "default"  # "default", "euler", "euler_a", "dpmpp_2m", "ddim", "unipc", "lcm"
    width: int | None = None  # txt2img size; others take the image size
    height: int | None = None
    native_resolution: bool = True  # scale the region to the model's native size and back
    classic_method: str = "telea"  # classic inpaint: "telea" | "ns"
    control: ControlSettings | None = None
    outpaint: OutpaintSettings | None = None
    upscale: UpscaleSettings | None = None
    previews: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image))
        object.__setattr__(self, "mask", _frozen_array(self.mask))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")


@dataclass(frozen=True)
class GenerationResult:
    """What a finished job hands back: one image per batch item, with its seed."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- seeds
# Seed conventions shared by the service, the CLI and every backend.
#
# - A request whose ``seed`` is None gets a random seed chosen by the service before a
#   backend sees it, so backends always receive a concrete seed.
# - Batch item ``i`` (0-based) of a request with seed ``s`` uses seed ``s + i``
#   (wrapping at 2**32), so any single candidate of a batch can be re-run alone with
#   ``batch_size=1, seed=s + i`` and give the same picture.
# - The seeds actually used are reported in ``GenerationResult.seeds``.

SEED_MODULUS = 2**32


def random_seed() -> int:
    """A fresh seed in [0, 2**32) (fits torch.Generator.manual_seed and numpy)."""
    return secrets.randbelow(SEED_MODULUS)


def batch_seeds(seed: int, batch_size: int) -> tuple[int, ...]:
    """The seeds of a batch: seed, seed + 1, ... (mod 2**32)."""
    return tuple((int(seed) + i) % SEED_MODULUS for i in range(int(batch_size)))


def with_seed(request: GenerationRequest) -> GenerationRequest:
    """`request` unchanged if it has a seed, else a copy with a random one."""
    if request.seed is not None:
        return request
    return dataclasses.replace(request, seed=random_seed())


# --------------------------------------------------------------------------- backends
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
