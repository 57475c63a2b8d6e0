"""`FlowParams`: everything the generation panel holds, as one plain dataclass.

The panel edits it, the flows turn it (with the document) into a request, the history
keeps it so a job can be run again, and "Use these settings again" restores every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from canvasai.backends.api import BlendSettings, ControlKind
from canvasai.core.settings import GenerationDefaults

_D = GenerationDefaults  # class attributes: the one place defaults are written

UPSCALE_TARGETS = ("resample", "layer", "new_document")
UPSCALE_METHODS = ("lanczos", "model", "refine")


@dataclass
class FlowParams:
    """What the generation panel holds; everything a flow needs besides the document.

    Defaults come from `canvasai.core.settings.GenerationDefaults`; a person's own
    defaults are `FlowParams.from_settings(settings.current().generation)`.
    """

    prompt: str = ""
    negative_prompt: str = ""
    model: str = _D.model
    steps: int = _D.steps
    guidance: float = _D.guidance
    strength: float = _D.strength
    seed: int | None = None
    batch_size: int = _D.batch_size
    scheduler: str = _D.scheduler
    # inpaint
    grow_px: int = _D.grow_px
    feather_px: int = _D.feather_px
    color_match: bool = _D.color_match
    classic_method: str = _D.classic_method
    # outpaint
    margins: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom
    prefill: str = _D.prefill
    # sketch
    control: ControlKind = ControlKind.SCRIBBLE
    controlnet: str | None = None
    control_scale: float = _D.control_scale
    control_preprocess: bool = True  # detect edges/lines/depth first; off: already a map
    sketch_use_mask: bool = True
    # upscale
    upscale_factor: int = _D.upscale_factor
    upscale_source: str = "image"  # "image" | "layer"
    # what accepting does (UPSCALE_TARGETS): resample every layer, no AI ("resample");
    # the upscaled picture as one new layer, the originals hidden beneath ("layer");
    # a new document ("new_document")
    upscale_target: str = "resample"
    # how the picture is upscaled with a model (UPSCALE_METHODS): "lanczos" (no AI),
    # "model" (the x4 upscaler model) or "refine" (Lanczos, then tiled img2img)
    upscale_method: str = "lanczos"
    upscale_refine_strength: float = 0.3  # tiled refine: img2img strength per tile
    upscale_steps: int = 20  # model upscaler / tiled refine: denoising steps
    upscale_sharpen: float = 0.0  # classic: unsharp-mask amount
    tile: int = _D.tile
    overlap: int = _D.overlap
    # edit: layers (by id) given to the edit model as reference images
    reference_layers: tuple[int, ...] = ()
    # LoRAs: (registry name or path, weight), besides <lora:name:w> tags in the prompt
    loras: tuple[tuple[str, float], ...] = ()
    # a style (canvasai.generation.styles) whose prompt templates wrap the prompt; "" = none
    style: str = ""

    @classmethod
    def from_settings(cls, defaults: GenerationDefaults) -> FlowParams:
        """Fresh params from a person's default settings."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in asdict(defaults).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (enums as strings, tuples as lists) for records and files."""
        d = asdict(self)
        d["control"] = ControlKind(self.control).value
        d["margins"] = [int(v) for v in self.margins]
        d["reference_layers"] = [int(v) for v in self.reference_layers]
        d["loras"] = [[str(n), float(w)] for n, w in self.loras]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowParams:
        """Params from `to_dict` output (or an older/newer version's): unknown keys are
        ignored, missing ones take defaults, values of the wrong kind are dropped."""
        known = {f.name: f for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in dict(data).items():
            if key not in known:
                continue
            try:
                if key == "margins":
                    value = tuple(int(v) for v in value)
                    if len(value) != 4:
                        continue
                elif key == "reference_layers":
                    value = tuple(int(v) for v in value)
                elif key == "loras":
                    value = tuple((str(n), float(w)) for n, w in value)
                elif key == "control":
                    value = ControlKind(value)
                elif key == "upscale_target" and value == "resize":
                    value = "layer"  # before: resampled layers with the AI result on top
            except (TypeError, ValueError):
                continue
            out[key] = value
        return cls(**out)

    def blend(self) -> BlendSettings:
        return BlendSettings(grow_px=self.grow_px, feather_px=self.feather_px,
                             color_match=self.color_match)
