"""Find the models a person has: a models folder and the Hugging Face cache.

Recognises diffusers folders (``model_index.json``), bare component folders (a
ControlNet, a TAESD tiny VAE, a VAE: ``config.json`` with a ``_class_name``) and
single-file ``.safetensors`` checkpoints. A checkpoint is classified from its
JSON header alone (key names and tensor shapes; no tensor is read), with the
same keys diffusers' ``infer_diffusers_model_type`` looks at.

Pickle files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run arbitrary code when
loaded. They are listed as refused and never opened, unless the person allowed
that exact file; then they are read only with ``torch.load(weights_only=True)``.

This module imports neither torch nor diffusers (except for an allowed pickle).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from canvasai.core.errors import ModelError
from canvasai.core.paths import data_dir

SD1 = "sd1"
SD2 = "sd2"
SDXL = "sdxl"
UNKNOWN = "unknown"

BASE = "base"
INPAINT = "inpaint"
CONTROLNET = "controlnet"
UPSCALER = "upscaler"
TAESD = "taesd"
VAE = "vae"
REFUSED = "refused"
UNSUPPORTED = "unsupported"

#: kinds that can be the main model of a job
MAIN_KINDS = frozenset({BASE, INPAINT, UPSCALER})
#: families the diffusion backend can run
SUPPORTED_FAMILIES = frozenset({SD1, SD2, SDXL})

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
_FILE_SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}
MODELS_DIR_ENV = "CANVASAI_MODELS_DIR"
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
)


@dataclass(frozen=True)
class ModelInfo:
    """One model found on disk."""

    name: str  # registry name: unique, what a request's `model` may say
    path: Path  # folder or file
    family: str  # "sd1" | "sd2" | "sdxl" | "unknown"
    kind: str  # "base" | "inpaint" | "controlnet" | "upscaler" | "taesd" | "vae" | "refused" | "unsupported"
    format: str  # "diffusers" | "single_file" | "pickle"
    control_type: str | None = None  # "scribble" | "lineart" | "canny" | "depth" for ControlNets
    size_bytes: int = 0
    note: str = ""

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


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor name -> dtype/shape/offsets).

    Reads 8 + N bytes only. Raises `ModelError` for anything that is not a
    well-formed safetensors file (truncated download, renamed pickle, ...).
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
        end = max(end, int(entry["data_offsets"][1]))
    if 8 + n + end > size:
        raise ModelError(
            f"{p.name} is truncated: the header describes {8 + n + end} bytes but the file has {size}. "
            "Download it again."
        )
    return header


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


def control_type_from_name(name: str) -> str | None:
    low = name.lower()
    for token, kind in _CONTROL_NAMES:
        if token in low:
            return kind
    return None


def _family_from_cross_dim(dim: int | None) -> str:
    return {768: SD1, 1024: SD2, 2048: SDXL}.get(dim or 0, UNKNOWN)


def classify_checkpoint(shapes: Mapping[str, Sequence[int]], name: str = "") -> _Class:
    """Family and kind of a single-file checkpoint from its tensor names and shapes.

    Mirrors the keys of diffusers' ``infer_diffusers_model_type`` (``inpainting``,
    ``xl_base``, ``xl_refiner``, ``upscale``, ``controlnet``), without loading tensors.
    """
    keys = shapes.keys()
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
                    dim = int(s[-1])
                    break
            family = _family_from_cross_dim(dim)
        ctype = control_type_from_name(name)
        note = "" if ctype else "control type not recognised from the file name"
        return _Class(family, CONTROLNET, ctype, note)

    if unet_in is not None:
        in_ch = int(unet_in[1])
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

    if any("lora_" in k for k in keys):
        return _Class(UNKNOWN, UNSUPPORTED, note="LoRA files are not supported yet")
    if any(k.startswith(("encoder.down.", "first_stage_model.")) for k in keys):
        return _Class(UNKNOWN, VAE, note="standalone VAE")
    if any(k.startswith(("decoder.layers.", "encoder.layers.")) for k in keys):
        return _Class(SDXL if "xl" in name.lower() else SD1, TAESD)
    return _Class(
        UNKNOWN, UNSUPPORTED, note="not a Stable Diffusion checkpoint this app recognises"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object.")
    return data


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
    unet_cfg_path = folder / "unet" / "config.json"
    unet_cfg = _read_json(unet_cfg_path) if unet_cfg_path.is_file() else {}
    if not unet_cfg:
        return _Class(
            UNKNOWN, UNSUPPORTED, note=f"{cls or 'pipeline'} without a UNet is not supported"
        )
    for comp in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sub = folder / comp
        if sub.is_dir() and _weights_are_pickle_only(sub):
            return _Class(
                UNKNOWN,
                REFUSED,
                note=f"{comp} weights are pickle files (.bin); convert to safetensors",
            )
    in_ch = int(unet_cfg.get("in_channels", 4))
    cross = unet_cfg.get("cross_attention_dim")
    note = ""
    if "XL" in cls or "text_encoder_2" in index:
        family = SDXL
    else:
        family = _family_from_cross_dim(int(cross) if isinstance(cross, int) else None)
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
        note = f"cross-attention size {cross}: treated as SD 1.x"
    if in_ch == 9:
        return _Class(family, INPAINT, note=note)
    if in_ch == 4:
        return _Class(family, BASE, note=note)
    return _Class(family, UNSUPPORTED, note=f"UNet with {in_ch} input channels is not supported")


def classify_component_folder(folder: Path, name: str) -> _Class | None:
    cfg = _read_json(folder / "config.json")
    cls = str(cfg.get("_class_name", ""))
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
        return _Class(SDXL if "xl" in name.lower() else SD1, TAESD)
    if cls in ("AutoencoderKL", "AsymmetricAutoencoderKL"):
        return _Class(UNKNOWN, VAE, note="standalone VAE")
    return None


# ---------------------------------------------------------------------------------------------
# inspecting one path


def inspect_path(
    path: str | os.PathLike[str], name: str | None = None, allow_pickle: bool = False
) -> ModelInfo | None:
    """ModelInfo for one folder or file, or None when it is not a model at all.

    Raises `ModelError` for a corrupt ``.safetensors``.
    """
    p = Path(path)
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
            label, p, c.family, c.kind, "diffusers", c.control_type, _folder_size(p), c.note
        )
    if not p.is_file():
        return None
    suffix = p.suffix.lower()
    size = p.stat().st_size
    if suffix == ".safetensors":
        c = classify_checkpoint(shapes_from_header(read_safetensors_header(p)), p.name)
        return ModelInfo(label, p, c.family, c.kind, "single_file", c.control_type, size, c.note)
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


class ModelRegistry:
    """Models found in the models folders and (optionally) the Hugging Face cache.

    `allow_pickle` holds the paths of pickle files the person explicitly allowed.
    Scanning is lazy and cached; call `rescan()` after installing a model.
    """

    def __init__(
        self,
        models_dirs: Iterable[str | os.PathLike[str]] | None = None,
        include_hf_cache: bool = True,
        *,
        hf_cache: str | os.PathLike[str] | None = None,
        allow_pickle: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        if models_dirs is None:
            env = os.environ.get(MODELS_DIR_ENV)
            models_dirs = env.split(os.pathsep) if env else [default_models_dir()]
        self.models_dirs = [Path(d).expanduser() for d in models_dirs if str(d)]
        self.include_hf_cache = include_hf_cache
        self.hf_cache = Path(hf_cache) if hf_cache is not None else None
        self.allow_pickle = {self._key(p) for p in allow_pickle}
        self._models: list[ModelInfo] | None = None
        self.errors: list[str] = []  # human-readable problems met while scanning

    @staticmethod
    def _key(p: str | os.PathLike[str]) -> str:
        return str(Path(p).expanduser().resolve())

    def is_pickle_allowed(self, path: str | os.PathLike[str]) -> bool:
        return self._key(path) in self.allow_pickle

    # -- scanning ---------------------------------------------------------------------------

    def rescan(self) -> list[ModelInfo]:
        self._models = None
        return self.models()

    def models(self) -> list[ModelInfo]:
        if self._models is None:
            self.errors = []
            found: list[ModelInfo] = []
            for d in self.models_dirs:
                if d.is_dir():
                    found.extend(self._scan_dir(d, d, 0))
            if self.include_hf_cache:
                found.extend(self._scan_hf(self.hf_cache or hf_cache_dir()))
            self._models = self._unique_names(found)
        return list(self._models)

    def _inspect(self, p: Path, name: str) -> ModelInfo | None:
        try:
            return inspect_path(p, name, allow_pickle=self.is_pickle_allowed(p))
        except ModelError as exc:
            self.errors.append(str(exc))
            size = p.stat().st_size if p.is_file() else 0
            return ModelInfo(name, p, UNKNOWN, UNSUPPORTED, "single_file", None, size, str(exc))

    def _scan_dir(self, root: Path, d: Path, depth: int) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        rel = d.relative_to(root).as_posix()
        if d.suffix == ".config" and any(d.with_suffix(s).is_file() for s in _FILE_SUFFIXES):
            return out  # the config sidecar of a single-file checkpoint, not a model
        if depth > 0 and ((d / "model_index.json").is_file() or (d / "config.json").is_file()):
            info = self._inspect(d, rel)
            if info is not None:
                return [info]
        if depth > _SCAN_DEPTH:
            return out
        try:
            entries = sorted(d.iterdir())
        except OSError as exc:
            self.errors.append(f"Cannot list {d}: {exc.strerror or exc}")
            return out
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                out.extend(self._scan_dir(root, e, depth + 1))
            elif e.suffix.lower() in PICKLE_SUFFIXES | {".safetensors"}:
                name = e.relative_to(root).with_suffix("").as_posix()
                info = self._inspect(e, name)
                if info is not None:
                    out.append(info)
        return out

    def _scan_hf(self, cache: Path) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        if not cache.is_dir():
            return out
        for repo_dir in sorted(cache.glob("models--*")):
            repo = repo_dir.name.removeprefix("models--").replace("--", "/")
            snap = _hf_snapshot(repo_dir)
            if snap is None:
                continue
            if (snap / "model_index.json").is_file() or (snap / "config.json").is_file():
                info = self._inspect(snap, repo)
                if info is not None:
                    out.append(info)
                    continue
            for e in sorted(snap.iterdir()):
                name = f"{repo}/{e.stem if e.is_file() else e.name}"
                if (
                    e.is_dir()
                    and ((e / "config.json").is_file() or (e / "model_index.json").is_file())
                    or e.is_file()
                    and e.suffix.lower() in PICKLE_SUFFIXES | {".safetensors"}
                ):
                    info = self._inspect(e, name)
                else:
                    info = None
                if info is not None:
                    out.append(info)
        return out

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
        for m in self.models():
            if m.name == name:
                return m
        low = name.lower()
        matches = [m for m in self.models() if m.name.lower() == low]
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

        Raises `ModelError` with a message for the person when nothing matches.
        """
        text = (model or "").strip()
        if not text:
            raise ModelError("No model was chosen.")
        p = Path(text).expanduser()
        looks_like_path = (
            os.sep in text or "/" in text or p.suffix.lower() in PICKLE_SUFFIXES | {".safetensors"}
        )
        if p.exists():
            info = inspect_path(p, allow_pickle=self.is_pickle_allowed(p))
            if info is None:
                raise ModelError(
                    f"{p} is not a model: expected a diffusers folder (model_index.json or "
                    "config.json) or a .safetensors checkpoint."
                )
            return info
        info = self.get(text)
        if info is not None:
            return info
        if looks_like_path:
            raise ModelError(f"Model not found: {text} does not exist.")
        known = ", ".join(m.name for m in self.models() if m.usable and m.kind in MAIN_KINDS)
        hint = f" Installed: {known}." if known else " No models are installed."
        where = ", ".join(str(d) for d in self.models_dirs)
        raise ModelError(f"Unknown model {text!r}.{hint} Put models in {where}.")


def describe(info: ModelInfo) -> str:
    """One line for lists and logs."""
    bits = [info.family, info.kind]
    if info.control_type:
        bits.append(info.control_type)
    text = f"{info.name} ({', '.join(bits)}, {info.format})"
    return f"{text}: {info.note}" if info.note else text
