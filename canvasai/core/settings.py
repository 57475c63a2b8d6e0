"""One typed settings model for every preference and every default.

The UI, the CLI and the backends read the same `Settings`; nothing else keeps a default
of its own. The model is plain dataclasses (no Qt): it round-trips through a flat
``{"section/field": value}`` mapping, which the app stores in QSettings
(`canvasai.ui.settings_store`) and tests or scripts may keep in a dict or a JSON file.

Environment variables override stored values, for tests, scripts and portable
installs; they are read here and nowhere else (see `ENVIRONMENT`).

Values read from a store are untrusted (a hand-edited file, an older version): each is
converted to the field's type and clamped to its range; a value that cannot be
converted falls back to the default instead of failing the start-up.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, get_type_hints

#: (low, high) bounds of numeric fields, by "section/field"; values outside are clamped.
RANGES: dict[str, tuple[float, float]] = {
    "generation/steps": (1, 200),
    "generation/guidance": (0.0, 30.0),
    "generation/strength": (0.0, 1.0),
    "generation/batch_size": (1, 16),
    "generation/grow_px": (0, 512),
    "generation/feather_px": (0, 512),
    "generation/tile": (64, 2048),
    "generation/overlap": (0, 512),
    "generation/control_scale": (0.0, 2.0),
    "files/autosave_s": (1.0, 24 * 3600.0),
    "files/recent_size": (0, 50),
    "editing/undo_mb": (64, 65536),
    "editing/pressure_curve": (0.25, 4.0),
    "editing/brush_size": (1.0, 1000.0),
    "editing/brush_hardness": (0.0, 1.0),
    "editing/brush_opacity": (0.01, 1.0),
    "editing/brush_flow": (0.01, 1.0),
    "ui/prompt_history_size": (0, 200),
    "export/quality": (1, 100),
    "export/scale_percent": (1.0, 1600.0),
}

#: The allowed values of text fields with a fixed set of choices; anything else reads as
#: the default. The Preferences dialog lists the same values.
CHOICES: dict[str, tuple[str, ...]] = {
    "generation/preview_quality": ("auto", "off"),
    "models/device": ("", "cuda", "mps", "cpu"),
    "models/precision": ("", "fp32", "fp16", "bf16"),
}


@dataclass
class GenerationDefaults:
    """What a fresh generation panel and every CLI command start from."""

    model: str = "classic"
    steps: int = 20
    guidance: float = 7.0
    strength: float = 0.75
    scheduler: str = "default"
    batch_size: int = 1
    grow_px: int = 4  # inpaint: how far the mask is dilated before feathering
    feather_px: int = 12  # inpaint: width of the soft edge of the paste-back
    color_match: bool = False
    classic_method: str = "telea"
    prefill: str = "infill"
    control_scale: float = 1.0
    upscale_factor: int = 2
    tile: int = 512
    overlap: int = 64
    #: live previews while a job runs: "auto" (a tiny autoencoder when one is installed,
    #: else the fast latent projection) or "off" (jobs finish a little sooner)
    preview_quality: str = "auto"


@dataclass
class ModelSettings:
    """Where models are found and what may be loaded."""

    models_dirs: tuple[str, ...] = ()  # empty: <data dir>/models
    include_hf_cache: bool = True
    allow_pickle: tuple[str, ...] = ()  # pickle files the person explicitly allowed
    configs_dir: str = ""  # override for the bundled config-only model folders
    device: str = ""  # "" = automatic (cuda, then mps, then cpu)
    precision: str = ""  # "" = automatic (bf16/fp16 on a GPU, fp32 on the CPU); fp32, fp16, bf16
    hidden: tuple[str, ...] = ()  # model paths the person hid from the lists
    defaults: tuple[str, ...] = ()  # "task=model name": the default model per task
    last_used: tuple[str, ...] = ()  # "task=model name": the picker's last choice per task
    setup_done: bool = False  # the first-run models setup was shown (finished or skipped)
    #: torch.compile the denoiser for live painting on CUDA (opt-in: the first frames of each
    #: new size wait for the compile)
    compile: bool = False


@dataclass
class FileSettings:
    data_dir: str = ""  # "" = platformdirs' user data folder
    autosave_s: float = 60.0
    last_dir: str = ""  # where the last file dialog was left ("" = the home folder)
    recent: tuple[str, ...] = ()  # File ▸ Recent, most recent first
    recent_size: int = 10


@dataclass
class EditingSettings:
    """Painting and undo."""

    undo_mb: int = 1024  # pixel data kept for undo per document, in MiB (oldest steps go first)
    pressure_curve: float = 1.0  # pen pressure exponent: < 1 soft (light touch counts more), > 1 firm
    # the brush and colours as they were at the last close (restored at the next launch)
    brush_size: float = 24.0
    brush_hardness: float = 0.8
    brush_opacity: float = 1.0
    brush_flow: float = 1.0
    foreground: str = "#000000"
    background: str = "#ffffff"


@dataclass
class ExportSettings:
    """The export dialog's last choices."""

    format: str = "png"
    quality: int = 92
    lossless: bool = False
    scale_percent: float = 100.0
    metadata: bool = True


@dataclass
class CredentialSettings:
    """Content Credentials (C2PA) on exports; reading them from opened images."""

    sign: bool = True  # embed signed credentials in every export
    cert_chain: str = ""  # PEM: signing certificate, then its CA chain ("" = self-issued)
    private_key: str = ""  # PEM private key of that certificate (unencrypted, owner-only)
    signer_name: str = ""  # the self-issued certificate's name ("" = "CanvasAI user")
    tsa_url: str = ""  # RFC 3161 timestamp authority ("" = none: signing stays offline)
    trust_anchors: str = ""  # PEM bundle of CAs whose credentials show as trusted


@dataclass
class UISettings:
    confirm_dialogs: bool = True  # False: closing never waits on a question (tests)
    prompt_history: tuple[str, ...] = ()
    prompt_history_size: int = 30
    test_script: str = ""  # a Python file run against the live window (smoke tests)
    clear_mask_after_accept: bool = True  # accepting a result that used the mask clears it
    window_geometry: str = ""  # the main window's size and place (base64 of Qt's bytes)
    window_state: str = ""  # its docks and toolbars (base64 of Qt's bytes)


@dataclass
class RemoteSettings:
    """ComfyUI servers jobs can run on (Preferences ▸ Servers); none = no remote engine."""

    servers: tuple[str, ...] = ()  # http(s)://host:port, one per server
    tokens: tuple[str, ...] = ()  # access token of the server at the same index ("" = none)


@dataclass
class Settings:
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)
    models: ModelSettings = field(default_factory=ModelSettings)
    files: FileSettings = field(default_factory=FileSettings)
    editing: EditingSettings = field(default_factory=EditingSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    ui: UISettings = field(default_factory=UISettings)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)

    # -- flat mapping ------------------------------------------------------------------------
    def to_flat(self) -> dict[str, Any]:
        """``{"section/field": value}`` with plain JSON-able values (tuples become lists)."""
        out: dict[str, Any] = {}
        for section in fields(self):
            obj = getattr(self, section.name)
            for f in fields(obj):
                value = getattr(obj, f.name)
                out[f"{section.name}/{f.name}"] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from a flat mapping; unknown keys are ignored, bad values take defaults."""
        s = cls()
        for key, raw in values.items():
            section, _, name = str(key).partition("/")
            obj = getattr(s, section, None)
            if obj is None or not dataclasses.is_dataclass(obj) or name not in _field_names(obj):
                continue
            setattr(obj, name, _coerce(key, raw, getattr(obj, name), _field_type(obj, name)))
        return s

    def copy(self) -> Settings:
        return Settings.from_flat(self.to_flat())


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in fields(obj)}


def _field_type(obj: Any, name: str) -> Any:
    return get_type_hints(type(obj))[name]


def _coerce(key: str, raw: Any, default: Any, typ: Any) -> Any:
    try:
        if typ is bool:
            if isinstance(raw, str):
                low = raw.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off", ""):
                    return False
                return default
            return bool(raw)
        if typ is int or typ is float:
            value = float(raw)
            if not math.isfinite(value):
                return default
            lo, hi = RANGES.get(key, (-math.inf, math.inf))
            value = min(max(value, lo), hi)
            return int(round(value)) if typ is int else value
        if typ is str:
            text = "" if raw is None else str(raw)
            if key in CHOICES:
                text = text.strip().lower()
                return text if text in CHOICES[key] else default
            return text
        if typ == tuple[str, ...]:
            if raw is None:
                return ()
            if isinstance(raw, str):
                raw = [raw] if raw else []
            return tuple(str(v) for v in raw)
    except (TypeError, ValueError):
        return default
    return default


# ------------------------------------------------------------------------------- environment

#: Environment variable -> (flat key, how to parse). The only place they are read.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "CANVASAI_DATA_DIR": ("files/data_dir", str),
    "CANVASAI_AUTOSAVE_S": ("files/autosave_s", str),
    "CANVASAI_MODELS_DIR": ("models/models_dirs", lambda v: [p for p in v.split(os.pathsep) if p]),
    "CANVASAI_MODEL_CONFIGS": ("models/configs_dir", str),
    "CANVASAI_DEVICE": ("models/device", str),
    "CANVASAI_NO_PROMPTS": ("ui/confirm_dialogs", lambda v: "0" if v == "1" else "1"),
    "CANVASAI_TEST_SCRIPT": ("ui/test_script", str),
    "CANVASAI_SIGN_EXPORTS": ("credentials/sign", str),
    "CANVASAI_COMFYUI_SERVERS": ("remote/servers", lambda v: [u for u in v.split(",") if u.strip()]),
}


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, (key, parse) in ENVIRONMENT.items():
        value = env.get(var)
        if value:
            out[key] = parse(value)
    return out


# ------------------------------------------------------------------------------------ stores


class SettingsStore(Protocol):
    """Where settings persist: QSettings in the app, a dict or a JSON file elsewhere."""

    def read(self) -> dict[str, Any]: ...

    def write(self, values: Mapping[str, Any]) -> None: ...


class MemoryStore:
    """A dict-backed store (tests, the CLI)."""

    def __init__(self, values: MutableMapping[str, Any] | None = None) -> None:
        self.values: MutableMapping[str, Any] = values if values is not None else {}

    def read(self) -> dict[str, Any]:
        return dict(self.values)

    def write(self, values: Mapping[str, Any]) -> None:
        self.values.update(values)


class JsonStore:
    """A JSON file (a missing or unreadable file reads as empty)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, values: Mapping[str, Any]) -> None:
        data = self.read() | dict(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=1), encoding="utf-8")


# ---------------------------------------------------------------------------- current settings

_lock = threading.Lock()
_store: SettingsStore = MemoryStore()
_current: Settings | None = None


def load(store: SettingsStore | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `store` (default: the current store), with environment overrides on top."""
    values = (store or _store).read() | environment_overrides(environ)
    return Settings.from_flat(values)


def use_store(store: SettingsStore) -> Settings:
    """Make `store` the place settings persist (the app passes its QSettings store)."""
    global _store, _current
    with _lock:
        _store = store
        _current = load(store)
        return _current


def current() -> Settings:
    """The process-wide settings (loaded on first use). Treat as read-only; use `update`."""
    global _current
    with _lock:
        if _current is None:
            _current = load(_store)
        return _current


def update(**changes: Any) -> Settings:
    """Change and persist settings: ``update(**{"generation/steps": 30})``.

    Returns the new settings object (a new instance: readers holding the old one keep a
    consistent snapshot).
    """
    global _current
    with _lock:
        base = (_current or load(_store)).to_flat()
        fresh = Settings.from_flat(base | changes)
        flat = fresh.to_flat()
        _store.write({k: flat[k] for k in changes if k in flat})
        _current = fresh
        return fresh


def reset(store: SettingsStore | None = None) -> None:
    """Forget the loaded settings (tests); the next `current()` reads the store again."""
    global _store, _current
    with _lock:
        if store is not None:
            _store = store
        _current = None
