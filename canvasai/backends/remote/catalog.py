"""Server models: how they are named in a request, and which family each one is.

A server model is named ``comfyui:<folder>/<file>``, e.g.
``comfyui:checkpoints/sd_xl_base_1.0.safetensors`` or
``comfyui:diffusion_models/flux1-dev.safetensors``: the name says nothing about which
server, so any server of the pool that lists the file can run it. The family is told by
the file name (a server does not show headers), with the families' own labels, defaults
and sizes (`canvasai.backends.diffusion.families`, which imports no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "comfyui:"
MAIN_FOLDERS = ("checkpoints", "diffusion_models")


def is_remote_model(name: str) -> bool:
    return (name or "").strip().startswith(PREFIX)


def model_id(folder: str, filename: str) -> str:
    return f"{PREFIX}{folder}/{filename}"


def split_id(name: str) -> tuple[str, str]:
    """``comfyui:folder/file`` -> (folder, file); ValueError for another name."""
    text = (name or "").strip()
    if not text.startswith(PREFIX) or "/" not in text[len(PREFIX):]:
        raise ValueError(f"{name!r} is not a server model name")
    folder, _, filename = text[len(PREFIX):].partition("/")
    return folder, filename


@dataclass(frozen=True)
class ServerModel:
    id: str
    folder: str
    filename: str
    family: str
    kind: str  # "base" | "inpaint" | "edit"
    variant: str = ""


#: (substrings of a lower-cased file name, family); first match wins
_FAMILY_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("flux2", "flux.2", "klein"), "flux2"),
    (("chroma",), "chroma"),
    (("flux",), "flux"),
    (("sd3", "stable-diffusion-3", "stable_diffusion_3"), "sd3"),
    (("z_image", "z-image", "zimage"), "zimage"),
    (("qwen",), "qwen"),
    (("sdxl", "sd_xl", "xl_", "_xl", "-xl", "xl-", "pony", "illustrious", "noobai"), "sdxl"),
    (("v2-", "sd2", "sd_2", "768-v"), "sd2"),
)


def classify(folder: str, filename: str) -> ServerModel:
    low = filename.lower()
    family = "sd1" if folder == "checkpoints" else "flux"
    for hints, fam in _FAMILY_HINTS:
        if any(h in low for h in hints):
            family = fam
            break
    kind = "base"
    if "inpaint" in low or "fill" in low:
        kind = "inpaint"
    elif "kontext" in low or "edit" in low:
        kind = "edit"
    variant = ""
    if family == "flux":
        variant = "schnell" if "schnell" in low else ("fill" if "fill" in low else "dev")
    return ServerModel(model_id(folder, filename), folder, filename, family, kind, variant)


def main_models(listing: dict[str, list[str]]) -> list[ServerModel]:
    """The generation models of a server's listing (checkpoints and diffusion models)."""
    out = []
    for folder in MAIN_FOLDERS:
        for filename in listing.get(folder) or ():
            out.append(classify(folder, filename))
    return out


def pick_file(files: list[str], *hints: str) -> str | None:
    """The first file whose lower-cased name holds one of `hints` (tried in order)."""
    for hint in hints:
        for f in files:
            if hint in f.lower():
                return f
    return None
