"""What each model found is for, in words: its group in the Models window, the flows it
serves, its problem and the fix; and the per-task model choices kept in the settings
(``task=model name`` strings). No Qt, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from canvasai.backends import models as m

#: the groups of the Models window, in order: (key, label)
GROUPS = (
    ("main", "Checkpoints and transformers"),
    ("inpaint", "Inpaint / fill"),
    ("edit", "Edit by instruction"),
    ("controlnet", "ControlNet"),
    ("lora", "LoRA"),
    ("reference", "Reference images (IP-Adapter, Redux, image encoders)"),
    ("vae", "VAE"),
    ("text_encoder", "Text encoders"),
    ("upscaler", "Upscalers"),
    ("taesd", "Preview decoders"),
    ("problem", "Cannot be used"),
)
GROUP_LABELS = dict(GROUPS)

#: tasks that have a default model, with the model kinds that can serve them
TASKS = (
    ("generate", "Generate / refine / outpaint", (m.BASE,)),
    ("inpaint", "Inpaint", (m.INPAINT, m.BASE)),
    ("edit", "Edit", (m.EDIT,)),
    ("sketch", "Sketch → Render (ControlNet)", (m.CONTROLNET,)),
    ("upscale", "Upscale", (m.UPSCALER,)),
)

FORMATS = {
    "diffusers": "diffusers folder",
    "single_file": "single file",
    "gguf": "GGUF (quantized)",
    "pickle": "pickle",
    "unknown": "?",
}


def group_of(info: m.ModelInfo) -> str:
    if not info.usable:
        return "problem"
    if info.kind == m.BASE:
        return "main"
    return {
        m.INPAINT: "inpaint", m.EDIT: "edit", m.CONTROLNET: "controlnet", m.VAE: "vae",
        m.TEXT_ENCODER: "text_encoder", m.UPSCALER: "upscaler", m.TAESD: "taesd",
        m.LORA: "lora", m.IPADAPTER: "reference", m.IMAGE_ENCODER: "reference",
        m.REDUX: "reference",
    }.get(info.kind, "problem")


def format_label(info: m.ModelInfo) -> str:
    if info.parts:
        return "split files" + (" (GGUF)" if info.format == "gguf" else "")
    return FORMATS.get(info.format, info.format)


def flows_for(info: m.ModelInfo) -> list[str]:
    """The flows (the generation panel's tasks) this model serves."""
    if not info.usable:
        return []
    if info.kind == m.BASE:
        return ["Generate", "Refine", "Inpaint", "Outpaint", "Sketch → Render (with a ControlNet)",
                "Upscale refine"]
    if info.kind == m.INPAINT:
        return ["Inpaint", "Outpaint"]
    if info.kind == m.EDIT:
        return ["Edit"]
    if info.kind == m.CONTROLNET:
        return [f"Sketch → Render ({info.control_type or 'control type from its name'})"]
    if info.kind == m.UPSCALER:
        return ["Upscale"]
    if info.kind == m.TAESD:
        return ["Live previews"]
    if info.kind in (m.VAE, m.TEXT_ENCODER):
        return ["Part of a split-files model"]
    if info.kind == m.LORA:
        words = f" (trigger words: {', '.join(info.triggers)})" if info.triggers else ""
        return [f"LoRA for every flow: <lora:{info.name}:1> in the prompt{words}"]
    if info.kind == m.IPADAPTER:
        fam = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}.get(info.family, "SD")
        return [f"Reference images with {fam} models (IP-Adapter{' ' + info.variant if info.variant else ''})"]
    if info.kind == m.REDUX:
        return ["Reference images with Flux.1 models (Flux Redux)"]
    if info.kind == m.IMAGE_ENCODER:
        what = "Flux Redux" if info.variant == "siglip" else "IP-Adapters"
        return [f"Image encoder for {what}"]
    return []


def fix_for(info: m.ModelInfo) -> str:
    """What to do about a model that cannot be used ("" when it can)."""
    if info.usable:
        return ""
    note = info.note.lower()
    if info.format == "pickle" or "pickle" in note:
        return ("Convert it to .safetensors (or download the .safetensors version); or, if you "
                "trust its source, allow this one file (Models window: “Allow this pickle…”; it "
                "is then read with torch's weights-only loader).")
    if "without its other parts" in note:
        return "Put the missing text encoder / VAE files where the note says, then rescan."
    if "truncated" in note or "interrupted" in note or "only" in note and "bytes" in note:
        return "The file is incomplete: download it again."
    if "cannot read" in note or "permission" in note:
        return "Check the folder's permissions (the app needs to read it)."
    if "link" in note:
        return "Fix or remove the broken link."
    if "not a" in note or "recognis" in note:
        return "This file is not a model CanvasAI can run; hide it from the list."
    return "See the note; hide the entry if it is not meant to be a model."


# -- per-task choices: "task=model name" ---------------------------------------------------


def task_map(values: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        task, sep, name = str(v).partition("=")
        if sep and task and name:
            out[task] = name
    return out


def with_choice(values: Iterable[str], task: str, name: str | None) -> list[str]:
    """`values` with `task` set to `name` (removed when `name` is empty)."""
    d = task_map(values)
    if name:
        d[task] = name
    else:
        d.pop(task, None)
    return [f"{k}={v}" for k, v in sorted(d.items())]


def task_of_flow(flow: str) -> str:
    """The generation panel's task key -> the task whose model choice applies."""
    return {
        "auto": "generate", "generate": "generate", "refine": "generate",
        "outpaint": "generate", "inpaint": "inpaint", "edit": "edit", "sketch": "generate",
        "upscale": "upscale",
    }.get(flow, "generate")
