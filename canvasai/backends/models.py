"""Find the models a person has: a models folder and the Hugging Face cache.

Recognises diffusers folders (``model_index.json``), bare component folders (a
ControlNet, a TAESD tiny VAE, a VAE: ``config.json`` with a ``_class_name``) and
single-file ``.safetensors`` checkpoints. A checkpoint is classified from its
JSON header alone (key names and tensor shapes; no tensor is read), with the
same keys diffusers' ``infer_diffusers_model_type`` looks at.

Pickle files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run arbitrary code when
loaded. They are listed as refused and never opened, unless the person allowed
that exact file; then they are read only with ``torch.load(weights_only=True)``.

Every entry is classified on its own: a corrupt header, a malformed config, an
unreadable folder or a broken link becomes one *refused* entry with its reason and
never hides the rest. The scan visits each real folder and file once (by resolved
path), so symbolic links cannot make it loop or list a model twice.

One registry per process (`registry()`): the generation panel, the router (and
through it every job, the app's and the CLI's) and ``canvasai models`` all read the
same instance, built from ``settings.current().models``; `rescan()` refreshes it for
all of them, and a request naming a model the last scan did not see rescans once
before failing.

This module imports neither torch nor diffusers (except for an allowed pickle).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canvasai.backends import loras as _loras
from canvasai.backends import parts as _parts
from canvasai.backends import scan_index as _scan_index
from canvasai.backends.diffusion import families as _families
from canvasai.backends.gguf_header import read_gguf_shapes
from canvasai.core.errors import ModelError
from canvasai.core.paths import data_dir

if TYPE_CHECKING:
    from canvasai.core.settings import ModelSettings

SD1 = "sd1"
SD2 = "sd2"
SDXL = "sdxl"
UNKNOWN = "unknown"

BASE = "base"
INPAINT = "inpaint"
EDIT = "edit"  # follows instructions (Flux Kontext, Qwen-Image-Edit)
CONTROLNET = "controlnet"
UPSCALER = "upscaler"
TAESD = "taesd"
VAE = "vae"
TEXT_ENCODER = "text_encoder"  # a separate text encoder file (split files)
LORA = "lora"  # a LoRA adapter applied on top of a main model
#: a transformers depth-estimation model (DPT, Depth Anything): depth control maps
DEPTH_ESTIMATOR = "depth_estimator"
#: a transformers pose-estimation model (ViTPose): pose control maps
POSE_ESTIMATOR = "pose_estimator"
IPADAPTER = "ipadapter"  # an IP-Adapter: reference images for SD 1.x / SDXL (ComfyUI ipadapter/)
IMAGE_ENCODER = "image_encoder"  # a CLIP / SigLIP vision encoder (ComfyUI clip_vision/)
REDUX = "redux"  # Flux Redux: reference images for Flux.1 (ComfyUI style_models/)
REFUSED = "refused"
UNSUPPORTED = "unsupported"

#: kinds that can be the main model of a job
MAIN_KINDS = frozenset({BASE, INPAINT, EDIT, UPSCALER})
#: families the diffusion backend can run (one module each under backends/diffusion/families)
SUPPORTED_FAMILIES = frozenset(_families.names())

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
_FILE_SUFFIXES = PICKLE_SUFFIXES | {".safetensors", ".gguf"}
_MAX_HEADER = 100 * 1024 * 1024  # real SDXL headers are ~200 KB
_SCAN_DEPTH = 4

_CONTROL_NAMES = (
    ("scribble", "scribble"),
    ("sketch", "scribble"),
    ("lineart", "lineart"),
    ("line_art", "lineart"),
    ("line-art", "lineart"),
    ("canny", "canny"),
    ("depth", "depth"),
    ("softedge", "softedge"),
    ("soft_edge", "softedge"),
    ("soft-edge", "softedge"),
    ("pidinet", "softedge"),
    ("openpose", "pose"),
    ("dwpose", "pose"),
    ("_pose", "pose"),
    ("-pose", "pose"),
)


@dataclass(frozen=True)
class ModelInfo:
    """One model found on disk."""

    name: str  # registry name: unique, what a request's `model` may say
    path: Path  # folder or file
    family: str  # a family name ("sd1", "sdxl", "flux", "qwen", ...; see families) or "unknown"
    kind: str  # "base" | "inpaint" | "edit" | "controlnet" | "upscaler" | "taesd" | "vae" | "refused" | "unsupported"
    format: str  # "diffusers" | "single_file" | "gguf" | "pickle"
    #: ControlNets: "scribble" | "lineart" | "softedge" | "canny" | "depth" | "pose"
    control_type: str | None = None
    size_bytes: int = 0
    note: str = ""
    variant: str = ""  # within the family: "schnell", "dev", "fill", "kontext", "turbo", "edit-plus"
    #: split files: role -> file, for a transformer kept apart from its text encoders / VAE
    parts: tuple[tuple[str, Path], ...] = ()
    triggers: tuple[str, ...] = ()  # a LoRA's trigger words (from its metadata)

    @property
    def usable(self) -> bool:
        return self.kind not in (REFUSED, UNSUPPORTED)

    @property
    def is_single_file(self) -> bool:
        return self.format in ("single_file", "pickle")


def default_models_dir() -> Path:
    """``<data dir>/models`` (see `canvasai.core.paths.data_dir`)."""
    return data_dir() / "models"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


# ---------------------------------------------------------------------------------------------
# safetensors header


def _is_count(v: Any) -> bool:
    """A JSON whole number >= 0 (not a bool, not a float)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor name -> dtype/shape/offsets).

    Reads 8 + N bytes only. Raises `ModelError` for anything that is not a
    well-formed safetensors file (truncated download, renamed pickle, a header whose
    shapes or offsets are not lists of whole numbers, ...): a header that passes is
    safe to classify.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ModelError(
                    f"{p.name} is not a valid .safetensors file: it is only {size} bytes."
                )
            (n,) = struct.unpack("<Q", raw_len)
            if n <= 1 or n > _MAX_HEADER or n > size - 8:
                raise ModelError(
                    f"{p.name} is not a valid .safetensors file (corrupt or truncated header; "
                    "was the download interrupted?)."
                )
            raw = f.read(n)
    except OSError as exc:
        raise ModelError(f"Cannot read model file {p}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(
            f"{p.name} is not a valid .safetensors file (its header is not JSON)."
        ) from exc
    if not isinstance(header, dict):
        raise ModelError(f"{p.name} is not a valid .safetensors file (unexpected header).")
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or "shape" not in entry or "data_offsets" not in entry:
            raise ModelError(f"{p.name} is not a valid .safetensors file (bad entry {key!r}).")
        shape, offsets, dtype = entry["shape"], entry["data_offsets"], entry.get("dtype")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ModelError(
                f"{p.name} is not a valid .safetensors file (tensor {key!r} has shape "
                f"{_short(shape)}, not a list of whole numbers)."
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise ModelError(
                f"{p.name} is not a valid .safetensors file (tensor {key!r} has data_offsets "
                f"{_short(offsets)}, not [begin, end])."
            )
        if not isinstance(dtype, str):
            raise ModelError(
                f"{p.name} is not a valid .safetensors file (tensor {key!r} has no dtype)."
            )
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise ModelError(
            f"{p.name} is truncated: the header describes {8 + n + end} bytes but the file has {size}. "
            "Download it again."
        )
    return header


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shapes_from_header(header: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


# ---------------------------------------------------------------------------------------------
# classification


@dataclass(frozen=True)
class _Class:
    family: str
    kind: str
    control_type: str | None = None
    note: str = ""
    variant: str = ""


def control_type_from_name(name: str) -> str | None:
    low = name.lower()
    for token, kind in _CONTROL_NAMES:
        if token in low:
            return kind
    return None


def _family_from_cross_dim(dim: Any) -> str:
    if not _is_count(dim):
        return UNKNOWN
    return {768: SD1, 1024: SD2, 2048: SDXL}.get(dim, UNKNOWN)


def _dim(shape: Sequence[int] | None, index: int) -> int | None:
    """``shape[index]`` when it exists (headers come from untrusted files)."""
    if shape is None or not -len(shape) <= index < len(shape):
        return None
    return int(shape[index])


def _int_field(cfg: Mapping[str, Any], key: str, default: int, where: str) -> int:
    """A whole-number config value; `ModelError` naming the file and the value otherwise."""
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"{where}: {key} is {_short(value)}, not a whole number.")
    return value


def classify_checkpoint(shapes: Mapping[str, Sequence[int]], name: str = "") -> _Class:
    """Family and kind of a single-file checkpoint from its tensor names and shapes.

    Mirrors the keys of diffusers' ``infer_diffusers_model_type`` (``inpainting``,
    ``xl_base``, ``xl_refiner``, ``upscale``, ``controlnet``), without loading tensors.
    """
    keys = shapes.keys()
    ref = classify_reference_file(shapes)
    if ref is not None:
        return ref
    if _loras.is_lora(keys):
        family = _loras.lora_family(shapes)
        note = "" if family != UNKNOWN else "family not recognised from its keys"
        return _Class(family, LORA, note=note)
    dit = _families.detect_checkpoint(shapes, name)
    if dit is not None:
        return _Class(dit.family, dit.kind, note=dit.note, variant=dit.variant)
    unet_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")

    is_control = any(k.startswith("control_model.") for k in keys) or (
        "controlnet_cond_embedding.conv_in.weight" in keys
    )
    if is_control:
        if "add_embedding.linear_1.weight" in keys or "control_model.label_emb.0.0.weight" in keys:
            family = SDXL
        else:
            dim = None
            for k, s in shapes.items():
                if k.endswith("attn2.to_k.weight"):
                    dim = _dim(s, -1)
                    break
            family = _family_from_cross_dim(dim)
        ctype = control_type_from_name(name)
        note = "" if ctype else "control type not recognised from the file name"
        return _Class(family, CONTROLNET, ctype, note)

    if unet_in is not None:
        in_ch = _dim(unet_in, 1)
        if in_ch is None or len(unet_in) != 4:
            return _Class(
                UNKNOWN, UNSUPPORTED, note=f"unexpected UNet input weight shape {tuple(unet_in)}"
            )
        if "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias" in keys:
            family = SDXL
        elif "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias" in keys:
            return _Class(SDXL, UNSUPPORTED, note="SDXL refiner checkpoints are not supported yet")
        elif "model.diffusion_model.input_blocks.10.0.skip_connection.bias" in keys and in_ch == 7:
            return _Class(
                SD2, UPSCALER, note="x4 upscaler as a single file needs a diffusers folder"
            )
        elif any(k.startswith("cond_stage_model.model.") for k in keys):
            family = SD2
        elif any(k.startswith("cond_stage_model.transformer.") for k in keys):
            family = SD1
        else:
            return _Class(
                UNKNOWN, UNSUPPORTED, note="no text encoder in the file (UNet-only checkpoint)"
            )
        if in_ch == 9:
            return _Class(family, INPAINT)
        if in_ch == 4:
            return _Class(family, BASE)
        if in_ch == 8:
            return _Class(
                family, UNSUPPORTED, note="instruct-pix2pix checkpoints are not supported"
            )
        return _Class(
            family, UNSUPPORTED, note=f"UNet with {in_ch} input channels is not supported"
        )

    part = _parts.classify_part(shapes, name)
    if part is not None:
        kind, ptype = part
        what = "standalone VAE" if kind == VAE else "text encoder"
        return _Class(UNKNOWN, kind, note=f"{what} ({ptype})", variant=ptype)
    if any(k.startswith(("encoder.down.", "first_stage_model.")) for k in keys):
        return _Class(UNKNOWN, VAE, note="standalone VAE")
    if any(k.startswith(("decoder.layers.", "encoder.layers.")) for k in keys):
        return _Class(tiny_autoencoder_family(name), TAESD)
    return _Class(
        UNKNOWN, UNSUPPORTED, note="not a Stable Diffusion checkpoint this app recognises"
    )


_IP_CROSS_FAMILY = {768: SD1, 1024: SD2, 2048: SDXL}


def ip_adapter_variant(shapes: Mapping[str, Sequence[int]]) -> str:
    """"" (the plain IP-Adapter), "plus" (a resampler over patch features), "full"
    (full face) or "faceid" (needs InsightFace embeddings), from ``image_proj.*`` keys."""
    keys = shapes.keys()
    if any(".to_k_lora." in k or ".to_q_lora." in k for k in keys) or (
        "image_proj.perceiver_resampler.proj_in.weight" in keys
    ):
        return "faceid"
    if "image_proj.proj.3.weight" in keys:
        return "full"
    if "image_proj.latents" in keys:
        return "plus"
    if "image_proj.proj.weight" in keys:
        return ""
    return "faceid" if "image_proj.proj.0.weight" in keys else "plus"


def classify_reference_file(shapes: Mapping[str, Sequence[int]]) -> _Class | None:
    """An IP-Adapter, a CLIP / SigLIP vision encoder or a Flux Redux embedder, or None.

    IP-Adapters (h94's and ComfyUI's ``.safetensors``: ``image_proj.*`` + ``ip_adapter.N.*``)
    tell their family by the cross-attention width their keys project into (768 SD 1.x,
    2048 SDXL); vision encoders in the transformers layout (``vision_model.*``) are CLIP
    when they have a class token, SigLIP otherwise."""
    keys = shapes.keys()
    if "redux_up.weight" in keys and "redux_down.weight" in keys:
        return _Class("flux", REDUX, note="Flux Redux embedder (needs a SigLIP image encoder)")
    if any(k.startswith("image_proj.") for k in keys) and any(k.startswith("ip_adapter.") for k in keys):
        variant = ip_adapter_variant(shapes)
        cross = _dim(shapes.get("ip_adapter.1.to_k_ip.weight"), -1)
        family = _IP_CROSS_FAMILY.get(cross or 0, UNKNOWN)
        if variant == "faceid":
            return _Class(family, UNSUPPORTED, note="FaceID IP-Adapters need InsightFace "
                          "face embeddings, which CanvasAI does not compute", variant=variant)
        note = "" if family != UNKNOWN else f"cross-attention width {cross}: family not recognised"
        return _Class(family, IPADAPTER, note=note, variant=variant)
    if any(".ip_adapter_double_stream_k_proj." in k for k in keys):
        return _Class("flux", UNSUPPORTED, note="Flux IP-Adapters are not supported: Flux.1 takes "
                      "reference images through Flux Redux")
    if "vision_model.embeddings.patch_embedding.weight" in keys:
        kind = "clip" if "vision_model.embeddings.class_embedding" in keys else "siglip"
        return _Class(UNKNOWN, IMAGE_ENCODER, note=f"{kind.upper()} image encoder", variant=kind)
    if any(k.startswith("visual.transformer.resblocks.") for k in keys):
        return _Class(UNKNOWN, UNSUPPORTED, note="an open_clip vision encoder: use the transformers "
                      "layout (the image_encoder folder of h94/IP-Adapter, or ComfyUI's "
                      "clip_vision files)", variant="clip")
    return None


def _image_encoder_type(cfg: Mapping[str, Any]) -> str | None:
    """"clip" / "siglip" for a transformers vision-encoder config.json, else None."""
    arch = cfg.get("architectures")
    names = " ".join(a for a in arch if isinstance(a, str)) if isinstance(arch, list) else ""
    model_type = str(cfg.get("model_type", ""))
    if "CLIPVision" in names or model_type == "clip_vision_model":
        return "clip"
    if "SiglipVision" in names or model_type == "siglip_vision_model":
        return "siglip"
    return None


def _estimator_kind(cfg: Mapping[str, Any]) -> tuple[str, str] | None:
    """(DEPTH_ESTIMATOR | POSE_ESTIMATOR, note) for a transformers config.json, else None."""
    arch = cfg.get("architectures")
    names = [a for a in arch if isinstance(a, str)] if isinstance(arch, list) else []
    if any(a.endswith("ForDepthEstimation") for a in names):
        return DEPTH_ESTIMATOR, f"depth estimation ({names[0]})"
    if any(a.endswith("ForPoseEstimation") for a in names):
        return POSE_ESTIMATOR, f"pose estimation ({names[0]})"
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_HEADER:
            raise ModelError(f"{path} is too large for a config file.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        what = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
            type(data), "a number"
        )
        raise ModelError(f"{path} is not a JSON object (it holds {what}).")
    return data


def pipeline_components(folder: Path) -> dict[str, tuple[str, str]]:
    """What a diffusers folder's ``model_index.json`` names: component -> (library, class),
    the ones set to null (a missing safety checker) left out; {} when there is none."""
    try:
        index = _read_json(folder / "model_index.json")
    except ModelError:
        return {}
    return {k: (str(v[0]), str(v[1])) for k, v in index.items()
            if not k.startswith("_") and isinstance(v, list) and len(v) == 2
            and v[0] is not None and v[1] is not None}


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).stat().st_size
    return total


def _weights_are_pickle_only(folder: Path) -> bool:
    """True when a component folder holds .bin/.ckpt weights but no .safetensors."""
    names = [p.suffix for p in folder.iterdir() if p.is_file()]
    return any(s in PICKLE_SUFFIXES for s in names) and ".safetensors" not in names


def classify_pipeline_folder(folder: Path) -> _Class:
    index = _read_json(folder / "model_index.json")
    cls = str(index.get("_class_name", ""))
    for comp in ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
        sub = folder / comp
        if sub.is_dir() and _weights_are_pickle_only(sub):
            return _Class(
                UNKNOWN,
                REFUSED,
                note=f"{comp} weights are pickle files (.bin); convert to safetensors",
            )
    if cls == "FluxPriorReduxPipeline":
        return _Class("flux", REDUX, note="Flux Redux (SigLIP image encoder + Redux embedder)")
    probe = dict(index)
    probe["_name"] = folder.name if folder.parent.name != "snapshots" else folder.parent.parent.name
    tcfg = folder / "transformer" / "config.json"
    if tcfg.is_file():
        probe["_transformer_config"] = _read_json(tcfg)
    dit = _families.detect_folder(cls, probe)
    if dit is not None:
        return _Class(dit.family, dit.kind, note=dit.note, variant=dit.variant)
    unet_cfg_path = folder / "unet" / "config.json"
    unet_cfg = _read_json(unet_cfg_path) if unet_cfg_path.is_file() else {}
    if not unet_cfg:
        return _Class(
            UNKNOWN, UNSUPPORTED, note=f"{cls or 'pipeline'} without a UNet is not supported"
        )
    in_ch = _int_field(unet_cfg, "in_channels", 4, str(unet_cfg_path))
    cross = unet_cfg.get("cross_attention_dim")
    note = ""
    is_xl = "XL" in cls or "text_encoder_2" in index
    family = SDXL if is_xl else _family_from_cross_dim(cross)
    if "Upscale" in cls or (in_ch == 7 and unet_cfg.get("num_class_embeds")):
        if "LatentUpscale" in cls:
            return _Class(family, UNSUPPORTED, note="latent x2 upscaler is not supported")
        # the x4 upscaler is its own family member (SD 2 text encoder); any works here
        return _Class(SD2 if family == UNKNOWN else family, UPSCALER, note="x4 upscaler")
    if family == UNKNOWN:
        if not cls.startswith("StableDiffusion"):
            return _Class(UNKNOWN, UNSUPPORTED, note=f"unrecognised pipeline {cls or '?'}")
        # a Stable Diffusion pipeline with one text encoder of unusual size (e.g. a
        # distilled or test model): run it with the SD 1.x pipeline classes
        family = SD1
        note = f"cross-attention size {_short(cross)}: treated as SD 1.x"
    if in_ch == 9:
        return _Class(family, INPAINT, note=note)
    if in_ch == 4:
        return _Class(family, BASE, note=note)
    return _Class(family, UNSUPPORTED, note=f"UNet with {in_ch} input channels is not supported")


def classify_component_folder(folder: Path, name: str) -> _Class | None:
    cfg = _read_json(folder / "config.json")
    cls = str(cfg.get("_class_name", ""))
    estimator = _estimator_kind(cfg)
    if estimator is not None:
        if _weights_are_pickle_only(folder):
            return _Class(UNKNOWN, REFUSED, note="weights are pickle files (.bin)")
        return _Class(UNKNOWN, estimator[0], note=estimator[1])
    encoder = _image_encoder_type(cfg)
    if encoder is not None:
        if _weights_are_pickle_only(folder):
            return _Class(UNKNOWN, REFUSED, note="weights are pickle files (.bin)", variant=encoder)
        return _Class(UNKNOWN, IMAGE_ENCODER, note=f"{encoder.upper()} image encoder", variant=encoder)
    if cls == "ReduxImageEncoder":
        return _Class("flux", REDUX, note="Flux Redux embedder (needs a SigLIP image encoder)")
    dit_family = {
        f.controlnet_class: f.name for f in _families.ALL if f.controlnet_class != "ControlNetModel"
    }.get(cls)
    if dit_family is not None and cls:
        ctype = control_type_from_name(name)
        if _weights_are_pickle_only(folder):
            return _Class(dit_family, REFUSED, ctype, "weights are pickle files (.bin)")
        note = "" if ctype else "control type not recognised from the folder name"
        return _Class(dit_family, CONTROLNET, ctype, note)
    if cls in ("ControlNetModel", "ControlNetXSAdapter"):
        cross = cfg.get("cross_attention_dim")
        family = (
            SDXL if cfg.get("addition_embed_type") == "text_time" else _family_from_cross_dim(cross)
        )
        ctype = control_type_from_name(name)
        note = "" if ctype else "control type not recognised from the folder name"
        if _weights_are_pickle_only(folder):
            return _Class(family, REFUSED, ctype, "weights are pickle files (.bin)")
        return _Class(family, CONTROLNET, ctype, note)
    if cls == "AutoencoderTiny":
        return _Class(tiny_autoencoder_family(name), TAESD)
    if cls in ("AutoencoderKL", "AsymmetricAutoencoderKL"):
        return _Class(UNKNOWN, VAE, note="standalone VAE")
    return None


# ---------------------------------------------------------------------------------------------
# inspecting one path


def inspect_path(
    path: str | os.PathLike[str], name: str | None = None, allow_pickle: bool = False
) -> ModelInfo | None:
    """ModelInfo for one folder or file, or None when it is not a model at all.

    Raises `ModelError` (with the reason, for the person) for anything that cannot be
    read or makes no sense: a corrupt ``.safetensors``, a malformed ``config.json``,
    an unreadable folder. Never any other exception for bad file contents.
    """
    p = Path(path)
    try:
        return _inspect_path(p, name, allow_pickle)
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(f"Cannot read {p}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # a file shaped in a way no check above foresaw: still one refused entry
        raise ModelError(
            f"{p.name} could not be understood as a model ({type(exc).__name__}: {exc})."
        ) from exc


def _inspect_path(p: Path, name: str | None, allow_pickle: bool) -> ModelInfo | None:
    label = name or (p.stem if p.is_file() else p.name)
    if p.is_dir():
        if (p / "model_index.json").is_file():
            c = classify_pipeline_folder(p)
        elif (p / "config.json").is_file():
            c = classify_component_folder(p, label)
            if c is None:
                return None
        else:
            return None
        return ModelInfo(
            label,
            p,
            c.family,
            c.kind,
            "diffusers",
            c.control_type,
            _folder_size(p),
            c.note,
            variant=c.variant or _variant_from_name(c.family, label),
        )
    if not p.is_file():
        return None
    suffix = p.suffix.lower()
    size = p.stat().st_size
    if suffix == ".gguf":
        c = classify_checkpoint(read_gguf_shapes(p), p.name)
        if c.family == UNKNOWN or not _families.get(c.family).transformer_class:
            c = _Class(UNKNOWN, UNSUPPORTED, note="not a diffusion transformer CanvasAI knows "
                       "(GGUF is supported for the Flux, Flux.2, SD3, Z-Image, Qwen, Chroma "
                       "transformers)")
        return ModelInfo(
            label,
            p,
            c.family,
            c.kind,
            "gguf",
            None,
            size,
            c.note or "GGUF-quantized transformer",
            variant=c.variant or _variant_from_name(c.family, p.name),
        )
    if suffix == ".safetensors":
        header = read_safetensors_header(p)
        c = classify_checkpoint(shapes_from_header(header), p.name)
        if c.kind == LORA:
            meta = header.get("__metadata__")
            words = _loras.trigger_words(meta if isinstance(meta, dict) else None)
            return ModelInfo(
                label, p, c.family, LORA, "single_file", None, size, c.note, triggers=words
            )
        return ModelInfo(
            label,
            p,
            c.family,
            c.kind,
            "single_file",
            c.control_type,
            size,
            c.note,
            variant=c.variant or _variant_from_name(c.family, p.name),
        )
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            return ModelInfo(
                label,
                p,
                UNKNOWN,
                REFUSED,
                "pickle",
                control_type_from_name(p.name),
                size,
                f"{suffix} files are Python pickles and can run code when opened; not loaded. "
                "Convert it to .safetensors, or allow this file in the settings.",
            )
        shapes = {
            k: tuple(v.shape) for k, v in load_pickle_state_dict(p).items() if hasattr(v, "shape")
        }
        c = classify_checkpoint(shapes, p.name)
        note = "pickle allowed by the person; read with weights_only=True"
        return ModelInfo(
            label,
            p,
            c.family,
            c.kind,
            "pickle",
            c.control_type,
            size,
            f"{c.note}; {note}".strip("; "),
        )
    return None


def tiny_autoencoder_family(name: str) -> str:
    """Which family's latents a tiny autoencoder decodes, from the name people give it
    (taesd, taesdxl, taesd3, taef1, taef2)."""
    low = name.lower()
    for token, family in (("taesdxl", SDXL), ("taesd3", "sd3"), ("taef1", "flux"),
                          ("taef2", "flux2"), ("xl", SDXL)):
        if token in low:
            return family
    return SD1


def _variant_from_name(family: str, name: str) -> str:
    """Variants only a name tells (SDXL Turbo / Lightning, Z-Image-Turbo, ...)."""
    low = name.lower()
    for token in ("turbo", "lightning", "schnell", "kontext"):
        if token in low and family != UNKNOWN:
            return token
    return ""


def memory_estimate(info: ModelInfo) -> int:
    """Rough GPU memory (bytes) to run `info` with everything on the GPU: its weights as
    stored (bf16/fp16 files) plus room for activations at about 1 MP."""
    return int(info.size_bytes * 1.2) + (1 << 30)


def needs_parts(info: ModelInfo) -> bool:
    """A single-file transformer of a DiT family: it runs only with its text encoders + VAE."""
    fam = _families.find(info.family)
    return (
        fam is not None
        and bool(fam.transformer_class)
        and info.format in ("single_file", "gguf")
        and info.kind in (BASE, INPAINT, EDIT)
    )


_PART_FOLDERS = {"diffusion_models", "unet", "checkpoints", "stable-diffusion"}


def _install_root(p: Path) -> Path:
    """The folder holding ComfyUI-style sub-folders (diffusion_models/, text_encoders/, vae/)."""
    return p.parent.parent if p.parent.name.lower() in _PART_FOLDERS else p.parent


def pair_parts(models: list[ModelInfo]) -> list[ModelInfo]:
    """Give each single-file DiT transformer its text encoders and VAE from the same install.

    Parts are looked for first under the transformer's own install root (ComfyUI's
    ``text_encoders/``, ``clip/``, ``vae/`` next to ``diffusion_models/``), then anywhere
    scanned. A transformer whose parts are missing becomes a refused entry that says
    which files are missing and where they go; nothing is copied.
    """
    part_files = [m for m in models if m.kind in (TEXT_ENCODER, VAE) and m.variant]
    out = []
    for m in models:
        if not needs_parts(m):
            out.append(m)
            continue
        fam = _families.get(m.family)
        root = _install_root(m.path)
        chosen: list[tuple[str, Path]] = []
        missing = []
        for part in fam.parts:
            fits = [f for f in part_files if f.variant in part.accepts]
            local = [f for f in fits if root in f.path.parents]
            pick = (local or fits or [None])[0]
            if pick is None:
                missing.append(part)
            else:
                chosen.append((part.role, pick.path))
        if missing:
            need = "; ".join(
                f"the {p.what} (e.g. {p.example}) in {root / p.folder}" for p in missing
            )
            note = f"{fam.label} transformer without its other parts: put {need}"
            wrong = _wrong_parts(missing, part_files, root)
            if wrong:
                note += f". Found there, but for other models: {wrong}"
            out.append(replace(m, kind=REFUSED, note=note))
        else:
            extra = 0
            for _role, path in chosen:
                with contextlib.suppress(OSError):
                    extra += path.stat().st_size
            out.append(
                replace(
                    m,
                    parts=tuple(chosen),
                    note=m.note or "split files",
                    size_bytes=m.size_bytes + extra,
                )
            )
    return out


_PART_NAMES = {
    "clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5": "T5", "qwen3": "Qwen3",
    "qwen25vl": "Qwen2.5-VL", "mistral": "Mistral", "vae4": "SD/SDXL VAE (4 channels)",
    "vae16": "16-channel VAE", "vae32": "Flux.2 VAE (32 channels)", "wan": "Qwen-Image VAE",
}


def _wrong_parts(missing: Sequence[Any], part_files: Sequence[ModelInfo], root: Path) -> str:
    """Files of the missing parts' kind that sit in the install but are not what is needed,
    e.g. a Qwen2.5-VL encoder where Z-Image wants Qwen3: named, so the mix-up is clear."""
    kinds = {TEXT_ENCODER if p.role.startswith("text_encoder") else VAE for p in missing}
    found = [f for f in part_files if f.kind in kinds and root in f.path.parents]
    return ", ".join(
        f"{f.path.name} ({_PART_NAMES.get(f.variant, f.variant)})" for f in found
    )


def refused(name: str, path: Path, reason: str) -> ModelInfo:
    """A refused entry: something in a models folder that cannot be used, and why."""
    suffix = path.suffix.lower()
    fmt = (
        "single_file"
        if suffix == ".safetensors"
        else "gguf"
        if suffix == ".gguf"
        else "pickle"
        if suffix in PICKLE_SUFFIXES
        else "diffusers"
        if _is_dir(path)
        else "unknown"
    )
    size = 0
    with contextlib.suppress(OSError, ValueError):
        st = path.stat()
        size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return ModelInfo(name, path, UNKNOWN, REFUSED, fmt, None, size, reason)


def _is_dir(p: Path) -> bool:
    try:
        return stat.S_ISDIR(p.stat().st_mode)
    except (OSError, ValueError):
        return False


def load_pickle_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an *allowed* pickle checkpoint safely: torch.load with weights_only=True.

    weights_only restricts unpickling to tensors and plain containers, so a
    crafted ``__reduce__`` cannot run. Only called for files the person allowed.
    """
    import pickle

    import torch

    try:
        sd = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelError(
            f"{Path(path).name} could not be read as a plain weights file (it may contain code "
            f"or be corrupt): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    while isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ModelError(f"{Path(path).name} does not hold a state dict.")
    return sd


# ---------------------------------------------------------------------------------------------
# the registry


def _hf_snapshot(repo_dir: Path) -> Path | None:
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        cand = snaps / ref.read_text(encoding="utf-8").strip()
        if cand.is_dir():
            return cand
    dirs = [d for d in snaps.iterdir() if d.is_dir()]
    return max(dirs, key=lambda d: d.stat().st_mtime) if dirs else None


def _real(p: Path) -> str:
    """The resolved path: the identity of a folder or file, whatever links lead to it."""
    try:
        return os.path.realpath(p)
    except (OSError, ValueError):
        return os.path.abspath(p)


class _Scan:
    """One pass over the models folders.

    Each real folder and file is visited once (by resolved path): a link back to a
    parent, or two links to one model, cannot make the scan loop or list a model
    twice. Links are followed only after the real tree, so a model found both
    directly and through a link is listed under its real name. A bad entry becomes
    one refused `ModelInfo`; problems with a models folder itself go to `errors`.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.found: list[ModelInfo] = []
        self.errors: list[str] = []
        self.seen: set[str] = set()
        self.links: list[tuple[Path, Path, int]] = []  # (root, link, depth), followed last
        self.indexed: set[str] = set()  # scan-index keys met in this pass

    def claim(self, p: Path) -> bool:
        key = _real(p)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def run(self, models_dirs: Sequence[Path], hf_cache: Path | None) -> None:
        for root in models_dirs:
            try:
                if not root.is_dir():
                    continue
            except OSError as exc:
                self.errors.append(f"Cannot open models folder {root}: {exc.strerror or exc}")
                continue
            if self.claim(root):
                self.walk(root, root, 0)
        while self.links:
            root, link, depth = self.links.pop(0)
            self.entry(root, link, depth)
        if hf_cache is not None:
            self.hf(hf_cache)

    # -- models folders ---------------------------------------------------------------------

    def walk(self, root: Path, d: Path, depth: int) -> None:
        """List folder `d` (at `depth` below `root`) and look at each entry."""
        try:
            with os.scandir(d) as it:
                entries = sorted(
                    ((e.name, e.is_symlink()) for e in it if not e.name.startswith(".")),
                )
        except OSError as exc:
            reason = f"cannot read this folder: {exc.strerror or exc}"
            if depth == 0:
                self.errors.append(f"Cannot list models folder {d}: {exc.strerror or exc}")
            else:
                self.add(self.bad(d.relative_to(root).as_posix(), d, reason))
            return
        for name, is_link in entries:
            if is_link:
                self.links.append((root, d / name, depth + 1))
            else:
                self.entry(root, d / name, depth + 1)

    def entry(self, root: Path, p: Path, depth: int) -> None:
        rel = p.relative_to(root)
        if rel.suffix.lower() in _FILE_SUFFIXES:
            rel = rel.with_suffix("")
        try:
            st = p.stat()
        except OSError as exc:
            if p.suffix and p.suffix.lower() not in _FILE_SUFFIXES:
                return  # e.g. a dangling link to a text file: not a model either way
            if p.is_symlink():
                why = (
                    "a link that points nowhere"
                    if isinstance(exc, FileNotFoundError)
                    else (f"a link that cannot be followed ({exc.strerror or exc})")
                )
                target = ""
                with contextlib.suppress(OSError):
                    target = f" ({os.readlink(p)})"
                self.add(self.bad(rel.as_posix(), p, f"{why}{target}"))
            else:
                self.add(self.bad(rel.as_posix(), p, f"cannot read: {exc.strerror or exc}"))
            return
        if stat.S_ISDIR(st.st_mode):
            self.folder(root, p, depth)
        elif stat.S_ISREG(st.st_mode) and p.suffix.lower() in _FILE_SUFFIXES and self.claim(p):
            self.add(self.inspect(p, rel.as_posix()))

    def folder(self, root: Path, d: Path, depth: int) -> None:
        try:
            if d.suffix == ".config" and any(d.with_suffix(s).is_file() for s in _FILE_SUFFIXES):
                return  # the config sidecar of a single-file checkpoint, not a model
            if not self.claim(d):
                return
            is_model = (d / "model_index.json").is_file() or (d / "config.json").is_file()
        except OSError as exc:
            reason = f"cannot read this folder: {exc.strerror or exc}"
            self.add(self.bad(d.relative_to(root).as_posix(), d, reason))
            return
        if is_model:
            info = self.inspect(d, d.relative_to(root).as_posix())
            if info is not None:
                self.add(info)
                return
        if depth <= _SCAN_DEPTH:
            self.walk(root, d, depth)

    def add(self, info: ModelInfo | None) -> None:
        if info is not None:
            self.found.append(info)

    def bad(self, name: str, p: Path, reason: str) -> ModelInfo:
        """A broken entry: a refused `ModelInfo`, also reported among the scan's problems."""
        self.errors.append(f"{name}: {reason}")
        return refused(name, p, reason)

    def inspect(self, p: Path, name: str) -> ModelInfo | None:
        """`inspect_path`, with any failure turned into a refused entry (never raises).

        With a scan index, an entry whose fingerprint (size, mtime, inode; a folder's total
        size, newest mtime and file count) is unchanged since the last scan is not read again.
        """
        allow = self.registry.is_pickle_allowed(p)
        index = self.registry.index
        key: str | None = None
        fp: list[int] = []
        if index is not None:
            try:
                key = _real(p)
                st = os.stat(key)
                fp = (
                    _scan_index.folder_fingerprint(Path(key))
                    if stat.S_ISDIR(st.st_mode)
                    else _scan_index.file_fingerprint(st)
                )
            except OSError:
                key = None
            if key is not None:
                self.indexed.add(key)
                hit = index.lookup(key, fp, allow)
                if hit is not None:
                    if hit.get("error"):
                        return self.bad(name, p, str(hit["error"]))
                    fields = hit.get("info")
                    if not isinstance(fields, dict):
                        return None
                    try:
                        return ModelInfo(name, p, **fields)
                    except TypeError:
                        pass  # an entry from another version: read the file again
        try:
            info = inspect_path(p, name, allow_pickle=allow)
        except ModelError as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad entry must never hide the rest
            reason = f"could not be read ({type(exc).__name__}: {exc})"
        else:
            if index is not None and key is not None:
                index.store(key, fp, allow, info)
            return info
        if index is not None and key is not None:
            index.store(key, fp, allow, None, reason)
        return self.bad(name, p, reason)

    # -- Hugging Face cache -----------------------------------------------------------------

    def hf(self, cache: Path) -> None:
        try:
            if not cache.is_dir():
                return
            repos = sorted(cache.glob("models--*"))
        except OSError as exc:
            self.errors.append(f"Cannot list the Hugging Face cache {cache}: {exc.strerror or exc}")
            return
        for repo_dir in repos:
            repo = repo_dir.name.removeprefix("models--").replace("--", "/")
            try:
                self.hf_repo(repo, repo_dir)
            except OSError as exc:
                self.add(self.bad(repo, repo_dir, f"cannot read: {exc.strerror or exc}"))
            except Exception as exc:  # noqa: BLE001 - e.g. a garbled refs/main
                self.add(self.bad(repo, repo_dir, f"unreadable cache entry ({exc})"))

    def hf_repo(self, repo: str, repo_dir: Path) -> None:
        snap = _hf_snapshot(repo_dir)
        if snap is None:
            return
        if (snap / "model_index.json").is_file() or (snap / "config.json").is_file():
            info = self.inspect(snap, repo)
            if info is not None:
                self.add(info)
                return
        for e in sorted(snap.iterdir()):
            name = f"{repo}/{e.stem if e.is_file() else e.name}"
            if (
                e.is_dir()
                and ((e / "config.json").is_file() or (e / "model_index.json").is_file())
                or e.is_file()
                and e.suffix.lower() in _FILE_SUFFIXES
            ):
                self.add(self.inspect(e, name))


class ModelRegistry:
    """Models found in the models folders and (optionally) the Hugging Face cache.

    `allow_pickle` holds the paths of pickle files the person explicitly allowed.
    Scanning is lazy and cached; `rescan()` (thread-safe) refreshes it. The app uses
    one instance for everything: see `registry()`.
    """

    def __init__(
        self,
        models_dirs: Iterable[str | os.PathLike[str]] | None = None,
        include_hf_cache: bool = True,
        *,
        hf_cache: str | os.PathLike[str] | None = None,
        allow_pickle: Iterable[str | os.PathLike[str]] = (),
        index: _scan_index.ScanIndex | None | bool = True,
    ) -> None:
        """`index`: the persistent scan index (True: the shared one in the data folder;
        False / None: read every file on every scan)."""
        if index is True:
            index = _scan_index.shared_index()
        self.index = index if isinstance(index, _scan_index.ScanIndex) else None
        if models_dirs is None:
            models_dirs = _models_dirs_from(_current_model_settings())
        self.models_dirs = [Path(d).expanduser() for d in models_dirs if str(d)]
        self.include_hf_cache = include_hf_cache
        self.hf_cache = Path(hf_cache) if hf_cache is not None else None
        self.allow_pickle = {self._key(p) for p in allow_pickle}
        self._models: list[ModelInfo] | None = None
        self._lock = threading.RLock()
        #: completed scans so far (tests and callers can tell whether a rescan happened)
        self.scans = 0
        self.errors: list[str] = []  # human-readable problems met while scanning

    @classmethod
    def from_settings(cls, model_settings: ModelSettings | None = None) -> ModelRegistry:
        """A registry for `model_settings` (default: ``settings.current().models``)."""
        ms = model_settings if model_settings is not None else _current_model_settings()
        return cls(
            _models_dirs_from(ms),
            include_hf_cache=bool(ms.include_hf_cache),
            allow_pickle=ms.allow_pickle,
        )

    @staticmethod
    def _key(p: str | os.PathLike[str]) -> str:
        return str(Path(p).expanduser().resolve())

    def is_pickle_allowed(self, path: str | os.PathLike[str]) -> bool:
        return self._key(path) in self.allow_pickle

    # -- scanning ---------------------------------------------------------------------------

    def rescan(self) -> list[ModelInfo]:
        """Scan the folders again (thread-safe: concurrent callers wait for one scan each)."""
        with self._lock:
            scan = _Scan(self)
            scan.run(
                self.models_dirs,
                (self.hf_cache or hf_cache_dir()) if self.include_hf_cache else None,
            )
            models = self._unique_names(pair_parts(scan.found))
            if self.index is not None:
                self._save_index(scan)
            self.errors = scan.errors
            self._models = models
            self.scans += 1
            return list(models)

    def _save_index(self, scan: _Scan) -> None:
        """Forget index entries under the scanned folders that this scan no longer met, then
        write the index (only a cache: failures are ignored)."""
        assert self.index is not None
        roots = [_real(d) + os.sep for d in self.models_dirs]
        if self.include_hf_cache:
            roots.append(_real(self.hf_cache or hf_cache_dir()) + os.sep)
        met = scan.indexed

        def keep(key: str) -> bool:
            return key in met or not any(key.startswith(r) for r in roots)

        self.index.prune(keep)
        self.index.save()

    def rescan_if_unchanged(self, scans: int) -> list[ModelInfo]:
        """Rescan unless a scan completed since `scans` was read (then use that one)."""
        with self._lock:
            if self.scans == scans:
                return self.rescan()
            return self.models()

    def models(self) -> list[ModelInfo]:
        models = self._models
        if models is None:
            with self._lock:
                models = self._models
                if models is None:
                    return self.rescan()
        return list(models)

    @staticmethod
    def _unique_names(models: list[ModelInfo]) -> list[ModelInfo]:
        seen: dict[str, int] = {}
        out = []
        for m in models:
            n = seen.get(m.name, 0)
            seen[m.name] = n + 1
            out.append(m if n == 0 else replace(m, name=f"{m.name} ({n + 1})"))
        return out

    # -- lookups ----------------------------------------------------------------------------

    def get(self, name: str) -> ModelInfo | None:
        models = self.models()
        for m in models:
            if m.name == name:
                return m
        low = name.lower()
        matches = [m for m in models if m.name.lower() == low]
        return matches[0] if len(matches) == 1 else None

    def find(
        self, kind: str, family: str | None = None, control_type: str | None = None
    ) -> ModelInfo | None:
        """The first usable model of a kind (and family / control type).

        Models of the exact family come first; then ones whose family could not be
        recognised (their loading fails with a clear message if they do not fit).
        """
        candidates = [
            m
            for m in self.models()
            if m.kind == kind
            and m.usable
            and (control_type is None or m.control_type == control_type)
        ]
        if family is None:
            return candidates[0] if candidates else None
        for wanted in (family, UNKNOWN):
            for m in candidates:
                if m.family == wanted:
                    return m
        return None

    def resolve(self, model: str) -> ModelInfo:
        """A request's `model` string -> ModelInfo: a registry name, or a path to a folder/file.

        A name the last scan did not see triggers one rescan first (a model installed
        since, without pressing refresh). Raises `ModelError` with a message for the
        person when nothing matches.
        """
        text = (model or "").strip()
        if not text:
            raise ModelError("No model was chosen.")
        p = Path(text).expanduser()
        looks_like_path = os.sep in text or "/" in text or p.suffix.lower() in _FILE_SUFFIXES
        try:
            exists = p.exists()
        except (OSError, ValueError):
            exists = False
        if exists:
            info = inspect_path(p, allow_pickle=self.is_pickle_allowed(p))
            if info is None:
                raise ModelError(
                    f"{p} is not a model: expected a diffusers folder (model_index.json or "
                    "config.json) or a .safetensors checkpoint."
                )
            if needs_parts(info):  # a split transformer named by path: find its parts
                info = pair_parts([*self.models(), info])[-1]
            return info
        scans = self.scans
        info = self.get(text)
        if info is None and not (p.is_absolute() or text.startswith((".", "~"))):
            # a name (registry names may hold "/") the last scan did not see
            self.rescan_if_unchanged(scans)
            info = self.get(text)
        if info is not None:
            return info
        if looks_like_path:
            raise ModelError(f"Model not found: {text} does not exist.")
        known = ", ".join(m.name for m in self.models() if m.usable and m.kind in MAIN_KINDS)
        hint = f" Installed: {known}." if known else " No models are installed."
        where = ", ".join(str(d) for d in self.models_dirs)
        raise ModelError(f"Unknown model {text!r}.{hint} Put models in {where}.")


# ---------------------------------------------------------------------------------------------
# the process-wide registry


def _current_model_settings() -> ModelSettings:
    from canvasai.core import settings

    return settings.current().models


def _models_dirs_from(ms: ModelSettings) -> list[Path]:
    """The `models_dirs` setting, or the default folder when it is empty."""
    dirs = [Path(d).expanduser() for d in ms.models_dirs if str(d).strip()]
    return dirs or [default_models_dir()]


def _settings_key(ms: ModelSettings) -> tuple[Any, ...]:
    return (
        tuple(str(d) for d in _models_dirs_from(ms)),
        bool(ms.include_hf_cache),
        str(hf_cache_dir()) if ms.include_hf_cache else "",
        tuple(sorted(ModelRegistry._key(p) for p in ms.allow_pickle)),
    )


_shared_lock = threading.Lock()
#: registries by settings key; the one for ``settings.current().models`` is THE registry
_shared: dict[tuple[Any, ...], ModelRegistry] = {}
_MAX_SHARED = 4


def registry(model_settings: ModelSettings | None = None) -> ModelRegistry:
    """THE model registry: one instance per process for the panel, the router and the CLI.

    Built from ``settings.current().models`` and rebuilt when those change (other
    folders, HF cache on/off, allowed pickles); otherwise every caller gets the same
    instance, so a `rescan()` is seen by all of them. With `model_settings`, the
    registry for those settings (the same instance when they equal the current ones).
    """
    explicit = model_settings is not None
    ms = model_settings if model_settings is not None else _current_model_settings()
    key = _settings_key(ms)
    with _shared_lock:
        reg = _shared.get(key)
        if reg is None:
            if not explicit:
                _shared.clear()  # the settings changed: nothing scanned before is kept
            while len(_shared) >= _MAX_SHARED:
                del _shared[next(iter(_shared))]
            reg = _shared[key] = ModelRegistry.from_settings(ms)
        return reg


def peek(name: str) -> ModelInfo | None:
    """`name` in THE registry's last scan, without scanning (None if not scanned or unknown).

    For quick questions on the GUI thread ("is the chosen model an edit model?").
    """
    reg = _shared.get(_settings_key(_current_model_settings())) if _shared else None
    if reg is None or reg._models is None:
        return None
    return next((m for m in reg._models if m.name == name), None)


def rescan() -> list[ModelInfo]:
    """Scan the models folders again for everyone (the panel's refresh button); thread-safe."""
    return registry().rescan()


def reset_registry() -> None:
    """Forget the shared registry (tests); the next `registry()` builds a fresh one."""
    with _shared_lock:
        _shared.clear()


def describe(info: ModelInfo) -> str:
    """One line for lists and logs."""
    bits = [info.family, info.kind]
    if info.control_type:
        bits.append(info.control_type)
    text = f"{info.name} ({', '.join(bits)}, {info.format})"
    return f"{text}: {info.note}" if info.note else text
