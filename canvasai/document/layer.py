"""Layers: a named, tiled RGBA surface with compositing properties."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from canvasai.document.blend import BlendMode
from canvasai.document.tiles import TiledSurface

_ids = itertools.count(1)


@dataclass(eq=False)
class Layer:
    """A paint layer. Compared by identity: two layers with equal pixels are still two layers."""

    name: str
    surface: TiledSurface = field(default_factory=lambda: TiledSurface(4))
    opacity: float = 1.0
    visible: bool = True
    blend_mode: BlendMode = BlendMode.NORMAL
    locked: bool = False
    is_sketch: bool = False  # the ControlNet input for sketch -> render
    generation: dict[str, Any] | None = None  # parameters of the generation that made it
    id: int = field(default_factory=lambda: next(_ids))

    def duplicate(self, name: str | None = None) -> Layer:
        return Layer(
            name=name or f"{self.name} copy",
            surface=self.surface.copy(),
            opacity=self.opacity,
            visible=self.visible,
            blend_mode=self.blend_mode,
            locked=False,
            is_sketch=self.is_sketch,
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
            "is_sketch": self.is_sketch,
        }
