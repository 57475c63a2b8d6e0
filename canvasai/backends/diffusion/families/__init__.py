"""The model families, one self-contained module each (see `base.Family`).

`get(name)` returns a family by its registry name ("sd1", "sdxl", "flux", ...);
`detect_folder` / `detect_checkpoint` ask every family in turn whether it recognises
a pipeline folder or a single-file header. Nothing here imports torch or diffusers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canvasai.backends.diffusion.families.base import Detected, Family
from canvasai.backends.diffusion.families.chroma import Chroma
from canvasai.backends.diffusion.families.flux import Flux
from canvasai.backends.diffusion.families.flux2 import Flux2Klein
from canvasai.backends.diffusion.families.qwen import QwenImage
from canvasai.backends.diffusion.families.sd import SD1, SD2, SDXL
from canvasai.backends.diffusion.families.sd3 import SD3
from canvasai.backends.diffusion.families.zimage import ZImage
from canvasai.core.errors import ModelError

# order matters for checkpoint detection: Chroma and Flux.2 before Flux.1 (they have
# Flux.1-style double blocks too)
ALL: tuple[Family, ...] = (
    SD1(), SD2(), SDXL(), Chroma(), Flux2Klein(), Flux(), SD3(), ZImage(), QwenImage(),
)
_BY_NAME = {f.name: f for f in ALL}


def names() -> list[str]:
    return list(_BY_NAME)


def get(name: str) -> Family:
    """The family called `name`; `ModelError` for one CanvasAI cannot run."""
    fam = _BY_NAME.get(name)
    if fam is None:
        raise ModelError(f"The model family {name!r} is not supported.")
    return fam


def find(name: str) -> Family | None:
    return _BY_NAME.get(name)


def label(name: str | None) -> str:
    """The family's name for people ("SDXL", "Flux.1"), or `name` itself when no family
    module knows it ("unknown" for none)."""
    fam = _BY_NAME.get(name or "")
    return fam.label if fam is not None else (name or "unknown")


def detect_folder(class_name: str, index: Mapping[str, Any]) -> Detected | None:
    """Which family (and kind, variant) a diffusers pipeline folder is, if any knows it."""
    for fam in ALL:
        hit = fam.detect_folder(class_name, index)
        if hit is not None:
            return hit
    return None


def detect_checkpoint(shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
    """Which DiT family a single-file transformer is (SD UNets are the registry's)."""
    for fam in ALL:
        hit = fam.detect_checkpoint(shapes, name)
        if hit is not None:
            return hit
    return None
