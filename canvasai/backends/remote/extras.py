"""LoRAs, control layers and reference images of a request, prepared for a server job.

On our side, before anything is sent: the ``<lora:name:w>`` tags are taken out of the
prompt and merged with the request's LoRAs (as the local backend does), control maps are
made locally by the same preprocessors as local jobs (`canvasai.backends.preprocessors`:
OpenCV for canny / line art / scribble / soft edge, no torch; a local depth or pose
model where one is installed),
reference images are reduced to what an image encoder reads, and what no server can do is
refused with a sentence (regional prompts; references for families without IP-Adapter).

Per server, `resolve` matches every LoRA, ControlNet and IP-Adapter against the files the
server lists (`/object_info`), and names what it lacks *before* anything is uploaded or
queued. The result is a `graphs.Extras` whose images are upload keys (``control0``,
``reference0``, ...) that the plan's uploads carry.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import cv2
import numpy as np

from canvasai.backends.api import GenerationRequest, Task
from canvasai.backends.diffusion import families
from canvasai.backends.loras import LoraSpec, split_prompt
from canvasai.backends.remote import catalog, graphs
from canvasai.core.errors import ModelError

if TYPE_CHECKING:
    from canvasai.backends.remote.pool import ServerState

#: reference images are uploaded at most this large a side (image encoders read 224-336 px)
REFERENCE_SIDE = 512
IPADAPTER_PACK = "ComfyUI_IPAdapter_plus"
IPADAPTER_NODES = ("IPAdapterModelLoader", "IPAdapterAdvanced")

#: strong family markers in LoRA file names: (substrings, family); first match wins
_LORA_FAMILY_MARKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("flux2", "flux.2", "klein"), "flux2"),
    (("flux",), "flux"),
    (("sdxl", "sd_xl", "pony", "illustrious"), "sdxl"),
    (("sd3",), "sd3"),
    (("qwen",), "qwen"),
    (("z_image", "z-image", "zimage"), "zimage"),
    (("chroma",), "chroma"),
    (("sd15", "sd_15", "sd1.5", "sd-1.5"), "sd1"),
)


def control_key(i: int) -> str:
    return f"control{i}"


def reference_key(i: int) -> str:
    return f"reference{i}"


def _some(files: list[str], n: int = 6) -> str:
    if not files:
        return "none"
    shown = ", ".join(files[:n])
    return shown + (f" and {len(files) - n} more" if len(files) > n else "")


def with_prompt_loras(request: GenerationRequest) -> GenerationRequest:
    """`request` with its prompt's ``<lora:name:w>`` tags moved into `loras` (the request's
    own LoRAs win over a tag of the same name, as in the local backend)."""
    prompt, tagged = split_prompt(request.prompt)
    if not tagged:
        return request
    specs = {s.name: s for s in [*tagged, *request.loras]}
    return dataclasses.replace(request, prompt=prompt, loras=tuple(specs.values()))


def check_supported(request: GenerationRequest, model: catalog.ServerModel) -> None:
    """Refuse, before any network call, what no server can do for `request`."""
    if request.regions:
        raise ModelError(
            "Regional prompts are not available on ComfyUI servers yet: run this job with a "
            "local model, or turn the region layers off to use the global prompt everywhere."
        )
    needs_adapter = request.references and request.task != Task.UPSCALE
    if needs_adapter and model.family not in catalog.IPADAPTER_FAMILIES:
        raise ModelError(
            f"Reference images on a server go through IP-Adapter, which works with SD 1.x and "
            f"SDXL models; {model.filename} is a {families.label(model.family)} model. Use a local "
            "model for its reference inputs, or remove the reference images."
        )


def control_maps(request: GenerationRequest) -> tuple[list[np.ndarray], list[str]]:
    """The control layers' maps (H x W x 3, at their layer's size), made here as for a
    local job (`canvasai.backends.preprocessors.preprocess`: canny, line art, scribble and
    soft edge with OpenCV; depth and pose with their models where installed), and the
    notes to pass on (e.g. a depth proxy). Runs on the generation worker."""
    from canvasai.backends.preprocessors import preprocess

    maps, notes = [], []
    for c in request.controls:
        cmap, note = preprocess(c.kind, np.asarray(c.image), preprocess=c.preprocess)
        maps.append(np.ascontiguousarray(cmap[..., :3]))
        if note and note not in notes:
            notes.append(note)
    return maps, notes


def reference_images(request: GenerationRequest) -> list[np.ndarray]:
    """The reference images as RGB, at most `REFERENCE_SIDE` a side."""
    from canvasai.backends.diffusion.control_maps import flatten_on_white

    out = []
    for ref in request.references:
        rgb = flatten_on_white(np.asarray(ref.image))
        h, w = rgb.shape[:2]
        f = REFERENCE_SIDE / max(h, w)
        if f < 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(rgb))
    return out


def _lora_family(filename: str) -> str | None:
    low = filename.lower()
    for marks, fam in _LORA_FAMILY_MARKS:
        if any(m in low for m in marks):
            return fam
    return None


def _loras(server: ServerState, model: catalog.ServerModel,
           specs: tuple[LoraSpec, ...]) -> tuple[graphs.LoraUse, ...]:
    files = list(server.listing.get("loras") or ())
    uses, missing = [], []
    for spec in specs:
        found = catalog.match_file(files, spec.name, "loras")
        if found is None:
            missing.append(spec.name)
            continue
        fam = _lora_family(found)
        if fam is not None and fam != model.family:
            raise ModelError(
                f"LoRA {found} on {server.label} is for {families.label(fam)} models (by its name); "
                f"{model.filename} is a {families.label(model.family)} model."
            )
        uses.append(graphs.LoraUse(found, float(spec.weight)))
    if missing:
        what = "LoRA " + missing[0] if len(missing) == 1 else "LoRAs " + ", ".join(missing)
        raise ModelError(
            f"The server {server.label} has no {what} (ComfyUI models/loras; it lists "
            f"{_some(files)}). Copy the file there, or untick it."
        )
    return tuple(uses)


def _controls(server: ServerState, model: catalog.ServerModel,
              request: GenerationRequest) -> tuple[graphs.ControlUse, ...]:
    files = list(server.listing.get("controlnet") or ())
    uses = []
    for i, c in enumerate(request.controls):
        if c.model:
            found = catalog.match_file(files, c.model, "controlnet")
            if found is None:
                raise ModelError(f"The server {server.label} has no ControlNet {c.model} "
                                 f"(control layer {i + 1}; it lists {_some(files)}).")
        else:
            found = catalog.pick_controlnet(files, c.kind.value, model.family)
            if found is None:
                raise ModelError(
                    f"The server {server.label} has no {c.kind.value} ControlNet for "
                    f"{families.label(model.family)} (control layer {i + 1}; ComfyUI models/controlnet "
                    f"lists {_some(files)})."
                )
        uses.append(graphs.ControlUse(found, control_key(i), float(c.scale), float(c.start),
                                      float(c.end)))
    return tuple(uses)


def _references(server: ServerState, model: catalog.ServerModel,
                request: GenerationRequest) -> tuple[graphs.ReferenceUse, ...]:
    if not request.references:
        return ()
    nodes = set(server.listing.get("nodes") or ())
    if not all(n in nodes for n in IPADAPTER_NODES):
        raise ModelError(
            f"Reference images on a server need the {IPADAPTER_PACK} nodes, and "
            f"{server.label} does not have them: install them there (e.g. with ComfyUI "
            "Manager) with an IP-Adapter model and its CLIP vision encoder, or use a local "
            "model."
        )
    adapters = list(server.listing.get("ipadapter") or ())
    encoders = list(server.listing.get("clip_vision") or ())
    uses = []
    for i, ref in enumerate(request.references):
        if ref.model:
            adapter = catalog.match_file(adapters, ref.model, "ipadapter")
        else:
            adapter = catalog.pick_ipadapter(adapters, model.family)
        if adapter is None:
            wanted = ref.model or f"an IP-Adapter for {families.label(model.family)}"
            raise ModelError(f"The server {server.label} has no {wanted} (reference image "
                             f"{i + 1}; ComfyUI models/ipadapter lists {_some(adapters)}).")
        encoder = catalog.pick_clip_vision(encoders, adapter, model.family)
        if encoder is None:
            raise ModelError(
                f"The server {server.label} has no CLIP vision encoder for {adapter} "
                f"(ComfyUI models/clip_vision lists {_some(encoders)}; SD 1.5 and the "
                "'vit-h' SDXL adapters use CLIP-ViT-H-14, the others CLIP-ViT-bigG-14)."
            )
        weight_type = catalog.IPADAPTER_WEIGHT_TYPES.get(ref.kind.value, "linear")
        uses.append(graphs.ReferenceUse(adapter, encoder, reference_key(i), float(ref.strength),
                                        weight_type))
    return tuple(uses)


def resolve(server: ServerState, model: catalog.ServerModel,
            request: GenerationRequest) -> graphs.Extras:
    """The server's files for `request`'s LoRAs, control layers and references; raises
    `ModelError` naming the first thing the server lacks."""
    if request.task == Task.UPSCALE:
        return graphs.NO_EXTRAS  # no sampler runs: nothing to apply them to
    return graphs.Extras(_loras(server, model, request.loras),
                         _controls(server, model, request),
                         _references(server, model, request))
