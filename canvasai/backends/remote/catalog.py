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


# ------------------------------------------------------------------- LoRAs, ControlNets, adapters
# A server shows file names only, so what a file is for is read from its name, with the
# conventions the published files follow (control_v11p_sd15_canny, controlnet-canny-sdxl,
# ip-adapter-plus_sd15, CLIP-ViT-H-14-laion2B ...).

_WEIGHT_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")

#: control kind -> substrings of ControlNet file names made for it (first match wins)
CONTROL_HINTS: dict[str, tuple[str, ...]] = {
    "scribble": ("scribble",),
    "lineart": ("lineart", "line_art", "line-art"),
    "softedge": ("softedge", "soft_edge", "soft-edge", "hed", "pidi"),
    "canny": ("canny",),
    "depth": ("depth",),
    "pose": ("openpose", "dwpose", "pose"),
}


def file_family(filename: str, default: str = "sd1") -> str:
    """The family a file name says it is for (`default` when it says nothing)."""
    low = filename.lower()
    for hints, fam in _FAMILY_HINTS:
        if any(h in low for h in hints):
            return fam
    return default


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    for ext in _WEIGHT_EXTENSIONS:
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def match_file(files: list[str], name: str, folder: str) -> str | None:
    """The server file `name` asks for: the exact file, ``comfyui:<folder>/<file>``, or a
    local name or path whose file name (without extension, any case) matches one."""
    if name in files:
        return name
    if is_remote_model(name):
        try:
            f_folder, filename = split_id(name)
        except ValueError:
            return None
        return filename if f_folder == folder and filename in files else None
    want = _stem(name)
    for f in files:
        if _stem(f) == want:
            return f
    return None


def pick_controlnet(files: list[str], kind: str, family: str) -> str | None:
    """A ControlNet file for `kind` made for `family` (unmarked names count as SD 1.x)."""
    hints = CONTROL_HINTS.get(kind, (kind,))
    for hint in hints:
        for f in files:
            if hint in f.lower() and file_family(f) == family:
                return f
    return None


#: reference kind -> IPAdapterAdvanced weight_type (ComfyUI_IPAdapter_plus WEIGHT_TYPES)
IPADAPTER_WEIGHT_TYPES = {"content": "linear", "style": "style transfer",
                          "composition": "composition"}
IPADAPTER_FAMILIES = ("sd1", "sdxl")


def pick_ipadapter(files: list[str], family: str) -> str | None:
    """An IP-Adapter file for `family` (not the FaceID ones: they need InsightFace)."""
    usable = [f for f in files if "face" not in f.lower()]
    if family == "sdxl":
        mine = [f for f in usable if "xl" in f.lower()]
    else:
        mine = [f for f in usable if file_family(f) == family and "xl" not in f.lower()]
    # the ViT-H adapters share the SD 1.5 image encoder; prefer them, then "plus"
    mine.sort(key=lambda f: ("vit-h" not in f.lower() and family == "sdxl",
                             "plus" not in f.lower(), f))
    return mine[0] if mine else None


def pick_clip_vision(files: list[str], adapter: str, family: str) -> str | None:
    """The image encoder `adapter` was trained with: ViT-H for SD 1.5 and the SDXL
    ``vit-h`` adapters, ViT-bigG for the other SDXL ones."""
    low = adapter.lower()
    big_g = family == "sdxl" and "vit-h" not in low
    hints = ("bigg", "vit-g", "g-14", "big_g") if big_g else ("vit-h", "h-14", "vit_h", "h14")
    return pick_file(files, *hints)
