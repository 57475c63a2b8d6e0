"""Models people already have: ComfyUI, A1111 / Forge, InvokeAI installs and the HF cache.

`find_installs()` looks in the usual places (home folder, Documents, common app folders,
the environment variables those tools read) and `detect(folder)` recognises one folder the
person points at. Each `Install` names the folder to add to the ``models/models_dirs``
setting: the registry then scans it like its own models folder (ComfyUI's split files are
paired inside it). Nothing is copied or moved.

All of this is file-system work (listing folders, counting files): run it off the GUI
thread. Unreadable folders and symbolic-link loops are skipped, never fatal. No Qt, no torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from canvasai.backends.models import PICKLE_SUFFIXES, hf_cache_dir

COMFYUI = "comfyui"
A1111 = "a1111"
FORGE = "forge"
INVOKEAI = "invokeai"
HF_CACHE = "hf_cache"
FOLDER = "folder"

LABELS = {
    COMFYUI: "ComfyUI",
    A1111: "Stable Diffusion web UI (A1111)",
    FORGE: "Stable Diffusion web UI Forge",
    INVOKEAI: "InvokeAI",
    HF_CACHE: "Hugging Face cache",
    FOLDER: "Models folder",
}

#: sub-folders of ComfyUI's models/ that hold weights CanvasAI can use
COMFY_FOLDERS = (
    "checkpoints", "diffusion_models", "unet", "text_encoders", "clip", "vae", "loras",
    "controlnet", "upscale_models", "vae_approx",
)
#: sub-folders of A1111 / Forge's models/
A1111_FOLDERS = ("Stable-diffusion", "Lora", "ControlNet", "VAE", "ESRGAN", "VAE-approx", "text_encoder")

MODEL_SUFFIXES = frozenset({".safetensors", ".gguf"}) | PICKLE_SUFFIXES
_COUNT_DEPTH = 6
_COUNT_LIMIT = 100_000


@dataclass(frozen=True)
class Install:
    """An existing install found on disk."""

    kind: str  # comfyui | a1111 | forge | invokeai | hf_cache | folder
    root: Path  # the install itself (what the person recognises)
    models_dir: Path  # the folder to add to the models folders setting
    files: int = 0  # model files under it (.safetensors, .gguf, pickles; diffusers folders count their weights)
    size_bytes: int = 0
    subfolders: tuple[str, ...] = ()  # the model sub-folders present, e.g. ("checkpoints", "vae")
    problems: tuple[str, ...] = field(default=())  # folders that could not be read

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind)


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:
        return False


def _child_ci(folder: Path, name: str) -> Path | None:
    """`folder/name`, matching the name case-insensitively (Windows installs copied over)."""
    p = folder / name
    if _is_dir(p):
        return p
    low = name.lower()
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.lower() == low and e.is_dir():
                    return folder / e.name
    except OSError:
        return None
    return None


def count_models(folder: Path, seen: set[str] | None = None) -> tuple[int, int, list[str]]:
    """(model files, their total bytes, unreadable folders) under `folder`, following each
    real folder once (so a link back to a parent cannot loop); `seen` is shared between calls
    that must not count a folder twice."""
    files = size = 0
    problems: list[str] = []
    seen = set() if seen is None else seen
    stack = [(folder, 0)]
    while stack and files < _COUNT_LIMIT:
        d, depth = stack.pop()
        try:
            real = os.path.realpath(d)
        except (OSError, ValueError):
            continue
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(f"{d}: {exc.strerror or exc}")
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    if depth < _COUNT_DEPTH:
                        stack.append((Path(e.path), depth + 1))
                elif e.is_file() and os.path.splitext(e.name)[1].lower() in MODEL_SUFFIXES:
                    files += 1
                    size += e.stat().st_size
            except OSError:
                continue
    return files, size, problems


def detect(folder: str | os.PathLike[str], *, count: bool = True) -> Install | None:
    """What `folder` is: a ComfyUI, A1111 / Forge or InvokeAI install (or its models folder),
    a Hugging Face cache, or a plain folder holding models; None when it holds none."""
    root = Path(folder).expanduser()
    if not _is_dir(root):
        return None
    found = _detect_layout(root)
    if found is None:
        return None
    kind, inst_root, models_dir, subs = found
    files = size = 0
    problems: list[str] = []
    if count:
        if kind == HF_CACHE:
            files, size, problems = count_models(models_dir)
        else:
            targets = [models_dir / s for s in subs] if subs else [models_dir]
            seen: set[str] = set()
            for t in targets:
                f, b, pr = count_models(t, seen)
                files, size = files + f, size + b
                problems += pr
        if kind == FOLDER and files == 0:
            return None
    return Install(kind, inst_root, models_dir, files, size, tuple(subs), tuple(problems))


def _present(models: Path, names: Sequence[str]) -> list[str]:
    out = []
    for n in names:
        c = _child_ci(models, n)
        if c is not None:
            out.append(c.name)
    return out


def _detect_layout(root: Path) -> tuple[str, Path, Path, list[str]] | None:
    # a Hugging Face hub cache: models--org--name folders
    with contextlib.suppress(OSError):
        if any(p.name.startswith("models--") for p in root.iterdir() if _is_dir(p)):
            return HF_CACHE, root, root, []
    # the install root, or its models/ folder, or a models sub-folder (checkpoints/)
    candidates = [root, root.parent] if root.name.lower() == "models" else [root]
    if root.parent.name.lower() == "models":
        candidates.append(root.parent.parent)
    for base in candidates:
        models = _child_ci(base, "models")
        if models is None:
            continue
        if _is_file(base / "invokeai.yaml") or _is_file(base / "databases" / "invokeai.db"):
            return INVOKEAI, base, models, []
        comfy = _present(models, COMFY_FOLDERS)
        a1111 = _present(models, A1111_FOLDERS)
        if a1111 and (_child_ci(models, "Stable-diffusion") is not None or not comfy):
            forge = _is_dir(base / "modules_forge") or "forge" in base.name.lower()
            return (FORGE if forge else A1111), base, models, a1111
        if comfy and (
            _is_file(base / "main.py") or _is_dir(base / "comfy") or _is_dir(base / "custom_nodes")
            or {"checkpoints", "diffusion_models", "unet"} & {c.lower() for c in comfy}
        ):
            return COMFYUI, base, models, comfy
    return FOLDER, root, root, []


def usual_places(home: Path | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where these tools are usually installed (only folders that exist are returned)."""
    env = os.environ if environ is None else environ
    h = Path(home) if home is not None else Path.home()
    names = (
        "ComfyUI", "comfyui", "ComfyUI_windows_portable/ComfyUI", "stable-diffusion-webui",
        "stable-diffusion-webui-forge", "sd-webui-forge", "webui_forge/webui", "forge",
        "invokeai", "InvokeAI", "StabilityMatrix/Data", "pinokio/api/comfy.git/app",
    )
    parents = [h, h / "Documents", h / "AI", h / "ai", h / "src", h / "git", h / "Projects",
               h / "Apps", h / "Applications", h / "Desktop", h / "Downloads",
               h / ".local" / "share", Path("/opt")]
    out: list[Path] = []
    for var in ("INVOKEAI_ROOT", "COMFYUI_PATH", "COMFYUI_ROOT", "SD_WEBUI_ROOT"):
        if env.get(var):
            out.append(Path(env[var]).expanduser())
    for parent in parents:
        for n in names:
            out.append(parent / n)
        # also any folder directly inside whose name says what it is (ComfyUI-2024, my-forge, ...)
        with contextlib.suppress(OSError):
            if parent.is_dir():
                for e in os.scandir(parent):
                    low = e.name.lower()
                    if any(t in low for t in ("comfy", "webui", "forge", "invoke", "stable-diffusion")):
                        with contextlib.suppress(OSError):
                            if e.is_dir():
                                out.append(Path(e.path))
    unique: list[Path] = []
    seen: set[str] = set()
    for p in out:
        if not _is_dir(p):
            continue
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def find_installs(
    extra: Iterable[str | os.PathLike[str]] = (),
    *,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    include_hf_cache: bool = True,
) -> list[Install]:
    """Every install found in the usual places, in `extra` folders, and the HF cache; one
    entry per models folder (duplicates through links are listed once)."""
    places = [Path(p).expanduser() for p in extra] + usual_places(home, environ)
    found: list[Install] = []
    seen: set[str] = set()
    for p in places:
        inst = detect(p)
        if inst is None or inst.kind == FOLDER and p not in [Path(e).expanduser() for e in extra]:
            continue
        key = os.path.realpath(inst.models_dir)
        if key in seen:
            continue
        seen.add(key)
        found.append(inst)
    if include_hf_cache:
        cache = hf_cache_dir()
        inst = detect(cache) if _is_dir(cache) else None
        if inst is not None and os.path.realpath(cache) not in seen:
            found.append(inst)
    return found


def add_to_settings(installs: Iterable[Install]) -> list[str]:
    """Add the installs' models folders to ``models/models_dirs`` (the HF cache turns on
    ``models/include_hf_cache`` instead); returns the new list of folders. The default
    models folder stays in the list, so models downloaded or dropped there are still seen."""
    from canvasai.backends.models import default_models_dir
    from canvasai.core import settings

    ms = settings.current().models
    dirs = list(ms.models_dirs) or [str(default_models_dir())]
    known = {os.path.realpath(os.path.expanduser(d)) for d in dirs}
    hf = False
    for inst in installs:
        if inst.kind == HF_CACHE:
            hf = True
            continue
        key = os.path.realpath(inst.models_dir)
        if key not in known:
            known.add(key)
            dirs.append(str(inst.models_dir))
    changes: dict[str, object] = {"models/models_dirs": dirs}
    if hf:
        changes["models/include_hf_cache"] = True
    settings.update(**changes)
    return dirs
