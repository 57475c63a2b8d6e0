"""Styles: saved bundles of model, LoRAs, sampling settings and prompt templates.

A style says how to generate, not what: ``{prompt}, 35 mm photo, soft light`` wraps
the person's prompt when a job is planned, and the model, LoRAs, sampler, steps,
guidance and strength (each optional: empty keeps the panel's value) are set when
the style is picked. `live` holds the few-step settings live painting uses. Styles
ship per family (``resources/styles/<family>.json``); a person's own live in the data
folder's ``styles/`` and are imported and exported as small JSON files. Reading a
style file checks every value against the settings model's ranges: a style file is
untrusted input.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from canvasai.core.errors import CanvasAIError
from canvasai.core.paths import data_dir, resource
from canvasai.core.settings import RANGES

FORMAT = "canvasai-style"
VERSION = 1
_MAX_FILE = 256 * 1024


class StyleError(CanvasAIError):
    """A style file that cannot be used, with the reason."""


@dataclass(frozen=True)
class LiveSettings:
    """What live painting runs a style with (few steps, a fixed seed)."""

    steps: int = 4
    guidance: float = 1.0
    strength: float = 0.5


@dataclass(frozen=True)
class Style:
    name: str
    family: str = ""  # "" = any family; else the family whose models it suits
    model: str = ""  # "" keeps the chosen model
    loras: tuple[tuple[str, float], ...] = ()
    sampler: str = ""
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    prompt: str = "{prompt}"
    negative: str = "{negative}"
    live: LiveSettings = field(default_factory=LiveSettings)

    def render(self, prompt: str, negative: str) -> tuple[str, str]:
        """The prompt and negative prompt a job sends: the templates around the person's."""
        p = _fill(self.prompt, prompt=prompt, negative=negative)
        n = _fill(self.negative, prompt=prompt, negative=negative)
        return p, n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loras"] = [[n, w] for n, w in self.loras]
        return {"format": FORMAT, "version": VERSION, **d}


def _fill(template: str, **values: str) -> str:
    """``{prompt}`` / ``{negative}`` replaced; other braces are kept as typed (no format())."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return " ".join(out.split()).strip(" ,")


def _ranged(data: Mapping[str, Any], key: str, setting: str, integer: bool) -> Any:
    value = data.get(key)
    if value is None:
        return None
    lo, hi = RANGES[setting]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        integer and not float(value).is_integer()
    ):
        raise StyleError(f"{key} must be a number, not {value!r}.")
    if not lo <= value <= hi:
        raise StyleError(f"{key} {value} is outside {lo}–{hi}.")
    return int(value) if integer else float(value)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _text(data: Mapping[str, Any], key: str, default: str, limit: int = 2000) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or len(value) > limit:
        raise StyleError(f"{key} must be text (at most {limit} characters).")
    return value


def from_dict(data: Any) -> Style:
    """A style from its JSON form; `StyleError` naming what is wrong."""
    from canvasai.backends.loras import MAX_WEIGHT, MIN_WEIGHT

    if not isinstance(data, dict):
        raise StyleError("A style file holds one JSON object.")
    if data.get("format", FORMAT) != FORMAT:
        raise StyleError(f"Not a CanvasAI style (format {data.get('format')!r}).")
    name = _text(data, "name", "", 100).strip()
    if not name:
        raise StyleError("A style needs a name.")
    loras = []
    raw = data.get("loras", [])
    if not isinstance(raw, list) or len(raw) > 16:
        raise StyleError("loras must be a list of [name, weight] pairs (at most 16).")
    for item in raw:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or isinstance(item[1], bool) or not isinstance(item[1], (int, float))):
            raise StyleError(f"A LoRA must be [name, weight], not {item!r}.")
        if not MIN_WEIGHT <= item[1] <= MAX_WEIGHT:
            raise StyleError(f"LoRA weight {item[1]} is outside {MIN_WEIGHT:g}–{MAX_WEIGHT:g}.")
        loras.append((item[0], float(item[1])))
    live_raw = data.get("live") or {}
    if not isinstance(live_raw, dict):
        raise StyleError("live must be an object with steps, guidance and strength.")
    default = LiveSettings()
    live = LiveSettings(
        steps=_or(_ranged(live_raw, "steps", "generation/steps", True), default.steps),
        guidance=_or(_ranged(live_raw, "guidance", "generation/guidance", False),
                     default.guidance),
        strength=_or(_ranged(live_raw, "strength", "generation/strength", False),
                     default.strength),
    )
    return Style(
        name=name,
        family=_text(data, "family", "", 20),
        model=_text(data, "model", "", 1000),
        loras=tuple(loras),
        sampler=_text(data, "sampler", "", 40),
        steps=_ranged(data, "steps", "generation/steps", True),
        guidance=_ranged(data, "guidance", "generation/guidance", False),
        strength=_ranged(data, "strength", "generation/strength", False),
        prompt=_text(data, "prompt", "{prompt}"),
        negative=_text(data, "negative", "{negative}"),
        live=live,
    )


def load(path: str | os.PathLike[str]) -> Style:
    """Read a style file (untrusted: size-limited, every value checked)."""
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_FILE:
            raise StyleError(f"{p.name} is too large for a style file.")
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StyleError(f"Cannot read {p.name}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StyleError(f"{p.name} is not a style file: {exc}") from exc
    return from_dict(data)


def save(style: Style, path: str | os.PathLike[str]) -> Path:
    """Write `style` as JSON (atomically: a temporary file renamed over the target)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(style.to_dict(), indent=1, ensure_ascii=False),
                       encoding="utf-8")
        os.replace(tmp, p)
    except OSError as exc:
        raise StyleError(f"Cannot write {p.name}: {exc.strerror or exc}") from exc
    return p


def user_dir() -> Path:
    return data_dir() / "styles"


def file_name(name: str) -> str:
    """A safe file name for a style called `name` ("Inkwash fox!" -> "inkwash-fox.json")."""
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    return f"{stem or 'style'}.json"


def import_style(path: str | os.PathLike[str]) -> Style:
    """Read a style file and keep it among the person's own styles (one JSON file per
    style in the data folder's ``styles/``). A name a shipped style already uses gets
    " (imported)" added; one of the person's own is replaced. `StyleError` says what is
    wrong with a bad file, and nothing is kept."""
    style = load(path)
    if any(s.name == style.name for s in _shipped_all()):
        style = replace(style, name=f"{style.name} (imported)"[:100])
    save(style, user_dir() / file_name(style.name))
    return style


def export_style(style: Style, path: str | os.PathLike[str]) -> Path:
    """Write `style` to a file the person chose (".json" added when missing)."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_name(p.name + ".json")
    return save(style, p)


def from_params(name: str, params: Any, family: str = "") -> Style:
    """A style holding the panel's current model, LoRAs and sampling settings."""
    return Style(name=name.strip()[:100] or "My style", family=family or "",
                 model=params.model if params.model != "classic" else "",
                 loras=tuple((str(n), float(w)) for n, w in params.loras),
                 sampler="" if params.scheduler == "default" else params.scheduler,
                 steps=params.steps, guidance=params.guidance, strength=params.strength)


@functools.lru_cache(maxsize=1)
def _shipped_all() -> tuple[Style, ...]:
    """Every shipped style, read once (package data does not change while the app runs;
    the panel asks on every model change, on the GUI thread)."""
    out: list[Style] = []
    folder = resource("styles")
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(f.read_text(encoding="utf-8"))
        out += [from_dict(item) for item in data.get("styles", [])]
    return tuple(out)


def shipped(family: str | None = None) -> list[Style]:
    """The styles CanvasAI ships, for `family` (and the ones for any family)."""
    return [s for s in _shipped_all() if family is None or s.family in ("", family)]


def available(family: str | None = None, extra: Iterable[Path] = ()) -> list[Style]:
    """Shipped styles for `family`, then the person's own (a bad file is skipped)."""
    styles = shipped(family)
    folder = user_dir()
    files = list(extra) + (sorted(folder.glob("*.json")) if folder.is_dir() else [])
    for f in files:
        try:
            s = load(f)
        except StyleError:
            continue
        if family is None or s.family in ("", family):
            styles.append(s)
    return styles


def apply(style: Style, params: Any) -> Any:
    """`params` (FlowParams) with the style's model, LoRAs and sampling settings set."""
    changes: dict[str, Any] = {"style": style.name}
    if style.model:
        changes["model"] = style.model
    if style.sampler:
        changes["scheduler"] = style.sampler
    for key, attr in (("steps", "steps"), ("guidance", "guidance"), ("strength", "strength")):
        value = getattr(style, key)
        if value is not None:
            changes[attr] = value
    if style.loras:
        changes["loras"] = tuple(style.loras)
    return replace(params, **changes)


def find(name: str, family: str | None = None) -> Style | None:
    for s in available(family):
        if s.name == name:
            return s
    return None
