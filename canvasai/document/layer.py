"""Layers: a named, tiled RGBA surface with compositing properties, and an optional role.

A role makes a layer an input of generation besides the picture itself (issue 12):

- `ControlRole`: a control layer (sketch, line art, canny, depth map, pose, ...) given to
  a ControlNet with a strength and a start/end range of the denoising steps;
- `ReferenceRole`: a reference image (IP-Adapter, Redux, the edit models' references)
  with a strength and what it lends (content, style or composition);
- `RegionRole`: a regional prompt; the layer's alpha is the region.

Roles are plain frozen values (strings for the kinds, so this module needs nothing from
the backends); the generation flows turn them into the request contract's types. A role
is used only while its layer is visible. Old files' ``is_sketch`` flag reads as a control
layer of kind scribble.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Union

from canvasai.document.blend import BlendMode
from canvasai.document.tiles import TiledSurface

_ids = itertools.count(1)

#: control layer types, as the request contract's ControlKind values
CONTROL_KINDS = ("scribble", "lineart", "softedge", "canny", "depth", "pose")
CONTROL_LABELS = {
    "scribble": "Scribble", "lineart": "Line art", "softedge": "Soft edge", "canny": "Canny",
    "depth": "Depth", "pose": "Pose",
}
#: what a reference image lends the picture (the request contract's ReferenceKind values)
REFERENCE_KINDS = ("content", "style", "composition")
REFERENCE_LABELS = {"content": "Content", "style": "Style", "composition": "Composition"}
CONTROL_STRENGTH = (0.0, 2.0)  # the settings model's generation/control_scale range
REFERENCE_STRENGTH = (0.0, 2.0)
MAX_REGION_PROMPT = 2000  # characters


class RoleError(ValueError):
    """A role with a value outside its limits; the message says which."""


def _number(what: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RoleError(f"The {what} must be a number, not {value!r}.")
    if not lo <= value <= hi:
        raise RoleError(f"The {what} must be between {lo:g} and {hi:g}, not {value:g}.")
    return float(value)


@dataclass(frozen=True)
class ControlRole:
    """A control layer: its pixels guide the picture's structure through a ControlNet."""

    kind: str = "scribble"
    strength: float = 1.0  # controlnet_conditioning_scale
    start: float = 0.0  # fraction of the steps where the control starts acting
    end: float = 1.0  # ... and stops
    preprocess: bool = True  # False: the layer already is a control map (edges, depth)
    model: str = ""  # a ControlNet by registry name or path; "" = pick by kind

    type = "control"

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise RoleError(f"Unknown control type {self.kind!r}: one of {', '.join(CONTROL_KINDS)}.")
        _number("control strength", self.strength, *CONTROL_STRENGTH)
        _number("control start", self.start, 0.0, 1.0)
        _number("control end", self.end, 0.0, 1.0)
        if self.start >= self.end:
            raise RoleError(f"A control layer must start before it ends (start {self.start:.0%}, "
                            f"end {self.end:.0%}).")

    @property
    def label(self) -> str:
        return CONTROL_LABELS[self.kind]

    def describe(self) -> str:
        rng = "" if (self.start, self.end) == (0.0, 1.0) else (
            f", steps {self.start * 100:.0f}–{self.end * 100:.0f} %")
        pre = "" if self.preprocess else ", already a map"
        return f"Control layer: {self.label}, strength {self.strength:.2f}{rng}{pre}"


@dataclass(frozen=True)
class ReferenceRole:
    """A reference image: the picture borrows its content, style or composition."""

    kind: str = "content"
    strength: float = 0.6

    type = "reference"

    def __post_init__(self) -> None:
        if self.kind not in REFERENCE_KINDS:
            raise RoleError(f"Unknown reference type {self.kind!r}: one of "
                            f"{', '.join(REFERENCE_KINDS)}.")
        _number("reference strength", self.strength, *REFERENCE_STRENGTH)

    @property
    def label(self) -> str:
        return REFERENCE_LABELS[self.kind]

    def describe(self) -> str:
        return f"Reference image: {self.label.lower()}, strength {self.strength:.2f}"


@dataclass(frozen=True)
class RegionRole:
    """A regional prompt: inside the layer's painted area (its alpha) this prompt applies."""

    prompt: str = ""
    negative: str = ""

    type = "region"

    def __post_init__(self) -> None:
        for what, text in (("prompt", self.prompt), ("negative prompt", self.negative)):
            if not isinstance(text, str) or len(text) > MAX_REGION_PROMPT:
                raise RoleError(f"A region's {what} must be text of at most "
                                f"{MAX_REGION_PROMPT} characters.")
        if not self.prompt.strip():
            raise RoleError("A region needs a prompt: what to paint inside it.")

    @property
    def label(self) -> str:
        return "Region"

    def describe(self) -> str:
        text = self.prompt if len(self.prompt) <= 60 else self.prompt[:59] + "…"
        neg = f" (not: {self.negative[:40]})" if self.negative.strip() else ""
        return f"Region prompt: “{text}”{neg}"


LayerRole = Union[ControlRole, ReferenceRole, RegionRole, None]  # noqa: UP007
ROLE_TYPES = ("control", "reference", "region")


def role_to_dict(role: LayerRole) -> dict[str, Any] | None:
    """The role as plain JSON values (for the file), None for a normal layer."""
    if role is None:
        return None
    out: dict[str, Any] = {"type": role.type}
    if isinstance(role, ControlRole):
        out |= {"kind": role.kind, "strength": role.strength, "start": role.start,
                "end": role.end, "preprocess": role.preprocess}
        if role.model:
            out["model"] = role.model
    elif isinstance(role, ReferenceRole):
        out |= {"kind": role.kind, "strength": role.strength}
    else:
        out |= {"prompt": role.prompt, "negative": role.negative}
    return out


def role_from_dict(data: Any) -> LayerRole:
    """A role from `role_to_dict` output (untrusted: a file). `RoleError` says what is wrong;
    None (or an empty dict) is a normal layer."""
    if data is None or data == {}:
        return None
    if not isinstance(data, Mapping):
        raise RoleError("A layer role must be an object.")
    kind = data.get("type")
    try:
        if kind == "control":
            model = data.get("model", "")
            if not isinstance(model, str) or len(model) > 1000:
                raise RoleError("A control layer's model must be a name or a path.")
            return ControlRole(kind=data.get("kind", "scribble"),
                               strength=data.get("strength", 1.0),
                               start=data.get("start", 0.0), end=data.get("end", 1.0),
                               preprocess=bool(data.get("preprocess", True)), model=model)
        if kind == "reference":
            return ReferenceRole(kind=data.get("kind", "content"),
                                 strength=data.get("strength", 0.6))
        if kind == "region":
            return RegionRole(prompt=data.get("prompt", ""), negative=data.get("negative", ""))
    except TypeError as exc:
        raise RoleError(f"A layer role has a value of the wrong kind: {exc}") from exc
    raise RoleError(f"Unknown layer role {str(kind)[:40]!r}.")


def with_sketch(role: LayerRole, on: bool) -> LayerRole:
    """The role after setting the old ``is_sketch`` flag: on makes a scribble control layer
    (a control layer keeps its strength and range), off clears a scribble control."""
    if on:
        if isinstance(role, ControlRole):
            return replace(role, kind="scribble")
        return ControlRole(kind="scribble")
    if isinstance(role, ControlRole) and role.kind == "scribble":
        return None
    return role


@dataclass(eq=False)
class Layer:
    """A paint layer. Compared by identity: two layers with equal pixels are still two layers."""

    name: str
    surface: TiledSurface = field(default_factory=lambda: TiledSurface(4))
    opacity: float = 1.0
    visible: bool = True
    blend_mode: BlendMode = BlendMode.NORMAL
    locked: bool = False
    role: LayerRole = None  # a control layer, reference image or region prompt; None = paint
    generation: dict[str, Any] | None = None  # parameters of the generation that made it
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def is_sketch(self) -> bool:
        """The old sketch flag: a control layer of kind scribble (Sketch → Render's input)."""
        return isinstance(self.role, ControlRole) and self.role.kind == "scribble"

    @is_sketch.setter
    def is_sketch(self, on: bool) -> None:
        self.role = with_sketch(self.role, bool(on))

    @property
    def role_type(self) -> str:
        """"control", "reference", "region", or "" for a normal layer."""
        return self.role.type if self.role is not None else ""

    def duplicate(self, name: str | None = None) -> Layer:
        return Layer(
            name=name or f"{self.name} copy",
            surface=self.surface.copy(),
            opacity=self.opacity,
            visible=self.visible,
            blend_mode=self.blend_mode,
            locked=False,
            role=self.role,
            generation=dict(self.generation) if self.generation else None,
        )

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "opacity": self.opacity,
            "visible": self.visible,
            "blend_mode": self.blend_mode,
            "locked": self.locked,
            "role": self.role,
        }
