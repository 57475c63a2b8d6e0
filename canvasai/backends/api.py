"""The request contract: requests, results, typed task settings, seeds, JobContext, Backend.

This module sits below `canvasai.generation`: the flows and the service build requests,
backends run them, and neither side reaches into the other.

The GUI thread snapshots everything a job needs into a `GenerationRequest`; the worker
never touches the live document. Arrays are copied on construction and made read-only,
so a request can be shared across threads safely. A request validates itself when it is
built: sizes, counts and numbers outside their limits raise `RequestError` with a
sentence for the person, before any memory is allocated for the job.

Pixel conventions (everywhere in generation/ and backends/):
- images: ``H x W x 4`` uint8 straight (non-premultiplied) RGBA, or ``H x W x 3`` RGB;
- masks: ``H x W`` uint8, 255 = regenerate this pixel, 0 = keep it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from canvasai.backends.loras import MAX_WEIGHT as MAX_LORA_WEIGHT
from canvasai.backends.loras import MIN_WEIGHT as MIN_LORA_WEIGHT
from canvasai.backends.loras import LoraSpec
from canvasai.core.errors import GenerationError
from canvasai.core.settings import RANGES, GenerationDefaults

CLASSIC_MODEL = "classic"

# ------------------------------------------------------------------------------------ limits
#: Largest side of any image a job takes or makes.
MAX_SIDE = 16384
#: Largest input or output of a job, in pixels (16384²: 1 GiB of RGBA).
MAX_PIXELS = 1 << 28
#: Largest picture a model generates in one piece (txt2img/sketch size): 4096².
MAX_GENERATED_PIXELS = 4096 * 4096
#: Smallest side a model can generate.
MIN_GENERATED_SIDE = 8
#: How far an outpaint may extend one edge.
MAX_MARGIN = 8192
#: reference images one request may carry (Qwen-Image-Edit-Plus takes up to 3 besides the picture)
MAX_REFERENCES = 4
#: control layers one request may carry (a MultiControlNet of this many)
MAX_CONTROLS = 4
#: regional prompts one request may carry
MAX_REGIONS = 8
SCHEDULERS = (
    "default", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm",
)
CLASSIC_METHODS = ("telea", "ns")
PREFILLS = ("edge", "infill", "blur", "solid")
UPSCALE_FACTORS = (2, 4)
SEED_MODULUS = 2**32


class RequestError(GenerationError):
    """A request with a value outside its limits; the message says which and why."""


class Task(str, enum.Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    SKETCH = "sketch"
    UPSCALE = "upscale"
    EDIT = "edit"  # follow an instruction ("make it night") on the image or the selection


class ControlKind(str, enum.Enum):
    SCRIBBLE = "scribble"
    LINEART = "lineart"
    SOFTEDGE = "softedge"
    CANNY = "canny"
    DEPTH = "depth"
    POSE = "pose"


class ReferenceKind(str, enum.Enum):
    """What a reference image lends the picture (IP-Adapter; edit models read "content")."""

    CONTENT = "content"  # the subject and look of the whole reference
    STYLE = "style"  # colour, texture, brushwork, not the layout (InstantStyle blocks)
    COMPOSITION = "composition"  # the layout, not the style


def _frozen_array(a: np.ndarray | None) -> np.ndarray | None:
    """A read-only copy of `a`; an array that is already one (read-only, owning its data,
    as this function makes them) is shared, so `dataclasses.replace(request, seed=...)`
    does not copy a large image again on the GUI thread."""
    if a is None:
        return None
    if isinstance(a, np.ndarray) and not a.flags.writeable and a.base is None:
        return a
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------------------- validation


def check_number(what: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    """Raise RequestError unless `value` is a finite number in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RequestError(f"The {what} must be a number, not {value!r}.")
    if not math.isfinite(float(value)):
        raise RequestError(f"The {what} must be a finite number, not {value}.")
    if integer and float(value) != int(value):
        raise RequestError(f"The {what} must be a whole number, not {value}.")
    if not lo <= value <= hi:
        shown_lo, shown_hi = (int(lo), int(hi)) if integer else (lo, hi)
        raise RequestError(f"The {what} must be between {shown_lo} and {shown_hi}, not {value}.")


def _check_range(what: str, key: str, value: Any, *, integer: bool) -> None:
    lo, hi = RANGES[key]
    check_number(what, value, lo, hi, integer=integer)


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RequestError(f"Unknown {what} “{value}”: choose one of {', '.join(choices)}.")


def check_image(what: str, image: np.ndarray | None) -> None:
    if image is None:
        return
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise RequestError(f"The {what} must be an RGB or RGBA image of 8-bit values.")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise RequestError(f"The {what} is empty.")
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise RequestError(
            f"The {what} is {w}×{h}: at most {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS:,} pixels in all can be processed."
        )


# ------------------------------------------------------------------------- task settings


@dataclass(frozen=True)
class BlendSettings:
    """How a generated region goes back into the picture (inpaint, outpaint, sketch in a mask).

    `canvasai.backends.masking.composite` applies it, the one paste-back: pixels farther
    than ``grow_px + feather_px`` from the mask stay byte-identical.
    """

    grow_px: int = GenerationDefaults.grow_px
    feather_px: int = GenerationDefaults.feather_px
    color_match: bool = GenerationDefaults.color_match
    padding: float = 0.5  # context around the mask, as a fraction of the mask's size

    def validate(self) -> None:
        _check_range("mask grow", "generation/grow_px", self.grow_px, integer=True)
        _check_range("feather", "generation/feather_px", self.feather_px, integer=True)
        check_number("context padding", self.padding, 0.0, 4.0)


@dataclass(frozen=True)
class ControlSettings:
    """One control layer: a ControlNet input (sketch, line art, depth map, pose, photo).

    `image` covers the same area as the request's image (or its width x height). The
    ControlNet acts from fraction `start` to fraction `end` of the denoising steps
    (diffusers' ``control_guidance_start`` / ``control_guidance_end``).
    """

    kind: ControlKind
    image: np.ndarray  # H x W x 3/4 uint8: the sketch or photo
    model: str | None = None  # ControlNet registry name or path; None = pick by kind
    preprocess: bool = True  # run the matching preprocessor (canny edges, ...) first
    scale: float = GenerationDefaults.control_scale  # controlnet_conditioning_scale
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image))

    def validate(self) -> None:
        if not isinstance(self.kind, ControlKind):
            raise RequestError(f"Unknown control type {self.kind!r}.")
        check_image("control image", self.image)
        _check_range("control strength", "generation/control_scale", self.scale, integer=False)
        check_number("control start", self.start, 0.0, 1.0)
        check_number("control end", self.end, 0.0, 1.0)
        if self.start >= self.end:
            raise RequestError(
                f"A control layer must start before it ends (start {self.start:g}, end {self.end:g})."
            )


@dataclass(frozen=True)
class ReferenceImage:
    """A reference image and how strongly the picture follows it.

    Read by IP-Adapter (SD 1.x, SDXL), Flux Redux (Flux.1) and the reference inputs of the
    edit models (Kontext, Qwen-Image-Edit-Plus, Flux.2 Klein)."""

    image: np.ndarray  # H x W x 3/4 uint8
    strength: float = 0.6  # IP-Adapter scale / Redux prompt-embedding weight
    kind: ReferenceKind = ReferenceKind.CONTENT
    model: str | None = None  # adapter registry name or path; None = pick by family

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image))

    def validate(self, index: int = 0) -> None:
        if not isinstance(self.kind, ReferenceKind):
            raise RequestError(f"Unknown reference type {self.kind!r}.")
        check_image(f"reference image {index + 1}", self.image)
        check_number(f"strength of reference image {index + 1}", self.strength, 0.0, 2.0)


@dataclass(frozen=True)
class RegionPrompt:
    """A prompt that applies inside a region (a layer's alpha): 255 = this prompt only.

    `mask` has the size of the job's output (the request's image, or width x height)."""

    prompt: str
    mask: np.ndarray  # H x W uint8
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _frozen_array(self.mask))

    def validate(self, index: int = 0) -> None:
        if not self.prompt.strip():
            raise RequestError(f"Region {index + 1} needs a prompt.")
        m = self.mask
        if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != np.uint8:
            raise RequestError(f"The mask of region {index + 1} must be a single-channel 8-bit image.")
        if not m.any():
            raise RequestError(f"Region {index + 1} (“{self.prompt[:30]}”) is empty: paint its layer.")


@dataclass(frozen=True)
class OutpaintSettings:
    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    prefill: str = GenerationDefaults.prefill  # "edge" | "infill" | "blur" | "solid"

    @property
    def margins(self) -> tuple[int, int, int, int]:
        return (self.left, self.right, self.top, self.bottom)

    def validate(self) -> None:
        for side, value in zip(("left", "right", "top", "bottom"), self.margins, strict=True):
            check_number(f"{side} margin", value, 0, MAX_MARGIN, integer=True)
        if not any(self.margins):
            raise RequestError("Outpaint needs at least one edge to extend.")
        _check_choice("pre-fill", self.prefill, PREFILLS)


@dataclass(frozen=True)
class UpscaleSettings:
    scale: int = GenerationDefaults.upscale_factor  # 2 or 4
    tile: int = GenerationDefaults.tile  # tile size in output pixels for tiled refine
    overlap: int = GenerationDefaults.overlap
    refine_strength: float = 0.3  # for tiled diffusion refine after resize
    sharpen: float = 0.0  # classic: unsharp-mask amount, 0 = off
    noise_level: int = 20  # x4 upscaler: noise added to the low-resolution input

    def validate(self) -> None:
        if self.scale not in UPSCALE_FACTORS:
            raise RequestError(f"Upscale by 2× or 4×, not {self.scale}×.")
        _check_range("tile size", "generation/tile", self.tile, integer=True)
        _check_range("tile overlap", "generation/overlap", self.overlap, integer=True)
        if self.overlap >= self.tile:
            raise RequestError("The tile overlap must be smaller than the tile.")
        check_number("refine strength", self.refine_strength, 0.0, 1.0)
        check_number("sharpening", self.sharpen, 0.0, 5.0)
        check_number("noise level", self.noise_level, 0, 350, integer=True)


# -------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class GenerationRequest:
    task: Task
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    prompt: str = ""
    negative_prompt: str = ""
    model: str = CLASSIC_MODEL  # registry name, path to folder/file, or "classic"
    steps: int = GenerationDefaults.steps
    guidance: float = GenerationDefaults.guidance
    strength: float = 1.0  # img2img/inpaint denoising strength
    seed: int | None = None  # None = random; the service picks it, the result reports it
    batch_size: int = GenerationDefaults.batch_size
    scheduler: str = GenerationDefaults.scheduler
    width: int | None = None  # txt2img/sketch size; others take the image size
    height: int | None = None
    native_resolution: bool = True  # scale the region to the model's native size and back
    classic_method: str = GenerationDefaults.classic_method  # classic inpaint: "telea" | "ns"
    blend: BlendSettings = field(default_factory=BlendSettings)
    #: control layers, all applied together (a MultiControlNet); Task.SKETCH needs one
    controls: tuple[ControlSettings, ...] = ()
    outpaint: OutpaintSettings | None = None
    upscale: UpscaleSettings | None = None
    previews: bool = True
    #: reference images (a bare H x W x 3|4 array is taken as a `ReferenceImage` of strength 1)
    references: tuple[ReferenceImage, ...] = ()
    #: prompts tied to regions; the global prompt applies elsewhere
    regions: tuple[RegionPrompt, ...] = ()
    #: a live-painting frame: speed over finish (tiny autoencoder decode where installed,
    #: cached prompt embeddings); Apply re-runs the same request with live=False
    live: bool = False
    #: LoRAs to apply (besides any ``<lora:name:weight>`` tags in the prompt)
    loras: tuple[LoraSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image))
        object.__setattr__(self, "mask", _frozen_array(self.mask))
        object.__setattr__(self, "references", tuple(
            r if isinstance(r, ReferenceImage) else ReferenceImage(image=r, strength=1.0)
            for r in (self.references or ())
        ))
        object.__setattr__(self, "controls", tuple(self.controls or ()))
        object.__setattr__(self, "regions", tuple(self.regions or ()))
        self.validate()

    @property
    def control(self) -> ControlSettings | None:
        """The first control layer (the sketch of Task.SKETCH), or None."""
        return self.controls[0] if self.controls else None

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(width, height) of what the job makes before any upscale/outpaint growth."""
        if self.image is not None:
            return (self.image.shape[1], self.image.shape[0])
        if self.width is not None and self.height is not None:
            return (self.width, self.height)
        return None

    def validate(self) -> None:
        """Raise `RequestError` for anything outside its limits (called on construction)."""
        if not isinstance(self.task, Task):
            raise RequestError(f"Unknown task {self.task!r}.")
        _check_range("number of steps", "generation/steps", self.steps, integer=True)
        _check_range("guidance", "generation/guidance", self.guidance, integer=False)
        _check_range("strength", "generation/strength", self.strength, integer=False)
        _check_range("batch size", "generation/batch_size", self.batch_size, integer=True)
        if self.seed is not None:
            check_number("seed", self.seed, 0, SEED_MODULUS - 1, integer=True)
        _check_choice("sampler", self.scheduler, SCHEDULERS)
        _check_choice("classic method", self.classic_method, CLASSIC_METHODS)
        check_image("input image", self.image)
        if self.mask is not None:
            if self.mask.ndim != 2 or self.mask.dtype != np.uint8:
                raise RequestError("The mask must be a single-channel 8-bit image.")
            if self.image is not None and self.mask.shape != self.image.shape[:2]:
                raise RequestError(
                    f"The mask is {self.mask.shape[1]}×{self.mask.shape[0]} but the image is "
                    f"{self.image.shape[1]}×{self.image.shape[0]}."
                )
        if (self.width is None) != (self.height is None):
            raise RequestError("Give both a width and a height, or neither.")
        if self.width is not None:
            for what, v in (("width", self.width), ("height", self.height)):
                check_number(what, v, MIN_GENERATED_SIDE, MAX_SIDE, integer=True)
            if self.width * self.height > MAX_GENERATED_PIXELS:  # type: ignore[operator]
                raise RequestError(
                    f"{self.width}×{self.height} is too large to generate in one piece (at "
                    f"most {MAX_GENERATED_PIXELS:,} pixels, e.g. 4096×4096): generate "
                    f"smaller and upscale."
                )
        self.blend.validate()
        for part in (*self.controls, self.outpaint, self.upscale):
            if part is not None:
                part.validate()
        self._check_task_inputs()

    def _check_task_inputs(self) -> None:
        t = self.task
        needs_image = t in (Task.IMG2IMG, Task.INPAINT, Task.OUTPAINT, Task.UPSCALE, Task.EDIT)
        if needs_image and self.image is None:
            raise RequestError(f"{t.value} needs an input image.")
        if t == Task.INPAINT and self.mask is None:
            raise RequestError("inpaint needs a mask.")
        if t == Task.OUTPAINT:
            if self.outpaint is None:
                raise RequestError("outpaint needs margins (left, right, top, bottom).")
            h, w = self.image.shape[:2]  # type: ignore[union-attr]
            s = self.outpaint
            if (w + s.left + s.right) * (h + s.top + s.bottom) > MAX_PIXELS:
                raise RequestError("The outpainted image would be too large.")
        for spec in self.loras:
            if not isinstance(spec, LoraSpec) or not spec.name.strip():
                raise RequestError("A LoRA needs a name.")
            check_number(f"weight of LoRA {spec.name}", spec.weight, MIN_LORA_WEIGHT,
                          MAX_LORA_WEIGHT)
        if len(self.references) > MAX_REFERENCES:
            raise RequestError(f"At most {MAX_REFERENCES} reference images, not {len(self.references)}.")
        for i, ref in enumerate(self.references):
            if not isinstance(ref, ReferenceImage):
                raise RequestError(f"Reference image {i + 1} is not an image.")
            ref.validate(i)
        if len(self.controls) > MAX_CONTROLS:
            raise RequestError(f"At most {MAX_CONTROLS} control layers, not {len(self.controls)}.")
        if any(not isinstance(c, ControlSettings) for c in self.controls):
            raise RequestError("A control layer needs a type and an image.")
        if len(self.regions) > MAX_REGIONS:
            raise RequestError(f"At most {MAX_REGIONS} regional prompts, not {len(self.regions)}.")
        size = self.output_size
        for i, region in enumerate(self.regions):
            if not isinstance(region, RegionPrompt):
                raise RequestError(f"Region {i + 1} needs a prompt and a mask.")
            region.validate(i)
            if size is not None and region.mask.shape != (size[1], size[0]):
                raise RequestError(
                    f"The mask of region {i + 1} is {region.mask.shape[1]}×{region.mask.shape[0]} "
                    f"but the picture is {size[0]}×{size[1]}."
                )
        if t == Task.EDIT and not self.prompt.strip():
            raise RequestError("Edit needs an instruction, e.g. “make it night”.")
        if t == Task.SKETCH and not self.controls:
            raise RequestError("sketch needs a control image.")
        if t == Task.UPSCALE:
            h, w = self.image.shape[:2]  # type: ignore[union-attr]
            f = (self.upscale or UpscaleSettings()).scale
            if w * h * f * f > MAX_PIXELS:
                raise RequestError(
                    f"Upscaling {w}×{h} by {f}× would exceed {MAX_PIXELS:,} pixels."
                )


@dataclass(frozen=True)
class GenerationResult:
    """What a finished job hands back: one image per batch item, with its seed."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


# ------------------------------------------------------------------------------------ seeds
# Seed conventions shared by the service, the CLI and every backend.
#
# - A request whose ``seed`` is None gets a random seed from `with_seed`, called by the
#   service when the job is submitted (and by `runner.run_sync`, its headless twin), so
#   backends always receive a concrete seed.
# - Batch item ``i`` (0-based) of a request with seed ``s`` uses seed ``s + i``
#   (wrapping at 2**32), so any single candidate of a batch can be re-run alone with
#   ``batch_size=1, seed=s + i`` and give the same picture.
# - The seeds actually used are reported in ``GenerationResult.seeds``.


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


def request_seeds(request: GenerationRequest) -> tuple[int, ...]:
    """The seeds a backend uses for `request` (which must have been seeded)."""
    if request.seed is None:
        raise GenerationError("internal error: the request reached a backend without a seed")
    return batch_seeds(request.seed, request.batch_size)


# --------------------------------------------------------------------------------- backends
# A backend runs one request on the worker thread. It reports through the `JobContext`
# the service hands it, and must call `ctx.check_cancelled()` at least once per
# denoising step (it raises `JobCancelled`).


class JobContext(Protocol):
    job_id: int

    def check_cancelled(self) -> None:
        """Raise `canvasai.core.errors.JobCancelled` if the job was cancelled."""

    def progress(self, step: int, total: int) -> None:
        """Report that `step` of `total` denoising steps are done (1-based)."""

    def wants_preview(self) -> bool:
        """True when a preview frame would be shown now (throttling); skip the work otherwise."""

    def preview(self, step: int, rgba: np.ndarray) -> None:
        """Hand over a preview frame: H x W x 4 uint8 covering the request's image area.

        The backend may reuse the array for its next frame: copy it to keep it."""

    def note(self, message: str) -> None:
        """A human-readable status note (e.g. 'out of memory: retrying with VAE tiling')."""


class Backend(Protocol):
    name: str

    def run(self, request: GenerationRequest, ctx: JobContext) -> GenerationResult: ...
