"""The Document: size, layer stack, active layer, mask, selection and history."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from canvasai.core.errors import InvalidDocumentError
from canvasai.core.events import EventEmitter
from canvasai.core.geometry import Rect
from canvasai.document.blend import BlendMode
from canvasai.document.commands import (
    LayerPropertiesCommand,
    LayerStackCommand,
    TilesCommand,
)
from canvasai.document.history import History, MacroCommand
from canvasai.document.layer import Layer, with_sketch
from canvasai.document.tiles import TiledSurface, TileKey

MAX_SIDE = 32768  # pixels per side; sparse tiles make this cheap until painted
MAX_PIXELS = MAX_SIDE * MAX_SIDE

_LAYER_PROPS = ("name", "opacity", "visible", "blend_mode", "locked", "role", "is_sketch")


def validate_size(width: Any, height: Any) -> tuple[int, int]:
    """Check a requested canvas size and return it as ints, or raise a clear error."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError) as exc:
        raise InvalidDocumentError(f"The document size must be whole numbers, not {width!r} x {height!r}.") from exc
    if w != width or h != height:
        raise InvalidDocumentError(f"The document size must be whole numbers, not {width!r} x {height!r}.")
    if w <= 0 or h <= 0:
        raise InvalidDocumentError(f"The document must be at least 1 x 1 pixels (asked for {w} x {h}).")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise InvalidDocumentError(
            f"{w} x {h} is too large: CanvasAI documents can be at most {MAX_SIDE} pixels on each side."
        )
    return w, h


class Document:
    """A layered image. Layers are ordered bottom to top.

    Events (all synchronous, on the caller's thread):
    - pixels_changed(layer | None, rect): composited pixels in rect may have changed
    - layers_changed(): the stack or a layer's properties changed
    - active_changed(layer)
    - mask_changed(rect), selection_changed(rect), size_changed()
    """

    def __init__(self, width: int, height: int,
                 background: Iterable[int] | None = (255, 255, 255, 255)) -> None:
        self.width, self.height = validate_size(width, height)
        self.layers: list[Layer] = []
        self.active_index = -1
        self.mask = TiledSurface(1)
        self.selection: TiledSurface | None = None
        self.history = History()
        self.metadata: dict[str, Any] = {}  # CanvasAI extras: generation history, ...
        self.pixels_changed = EventEmitter()
        self.layers_changed = EventEmitter()
        self.active_changed = EventEmitter()
        self.mask_changed = EventEmitter()
        self.selection_changed = EventEmitter()
        self.size_changed = EventEmitter()
        if background is not None:
            bg = tuple(int(c) for c in background)
            self.layers.append(Layer("Background", TiledSurface(4, fill=bg)))
        self.layers.append(Layer("Layer 1"))
        self.active_index = len(self.layers) - 1

    # -- basics ---------------------------------------------------------------------
    @property
    def rect(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    @property
    def active_layer(self) -> Layer | None:
        if 0 <= self.active_index < len(self.layers):
            return self.layers[self.active_index]
        return None

    def index_of(self, layer: Layer) -> int:
        for i, candidate in enumerate(self.layers):
            if candidate is layer:
                return i
        raise ValueError(f"layer {layer.name!r} is not in this document")

    def set_active(self, layer: Layer | int) -> None:
        idx = layer if isinstance(layer, int) else self.index_of(layer)
        if idx != self.active_index and 0 <= idx < len(self.layers):
            self.active_index = idx
            self.active_changed.emit(self.layers[idx])

    def notify_pixels(self, layer: Layer | None, rect: Rect) -> None:
        r = rect.intersect(self.rect)
        if not r.is_empty():
            self.pixels_changed.emit(layer, r)

    # -- undo -----------------------------------------------------------------------
    def undo(self) -> bool:
        return self.history.undo()

    def redo(self) -> bool:
        return self.history.redo()

    def push_tiles_command(self, target: Layer | str, before: dict[TileKey, np.ndarray | None],
                           rect: Rect, text: str) -> None:
        """Record an already-applied pixel edit (tools call this when a stroke ends)."""
        if before:
            self.history.push(TilesCommand(self, target, before, rect, text))

    # -- pixel edits ----------------------------------------------------------------
    def write_pixels(self, layer: Layer, x: int, y: int, pixels: np.ndarray,
                     text: str = "Edit pixels") -> Rect:
        """Write straight RGBA pixels into a layer as one undo step."""
        h, w = pixels.shape[:2]
        rect = Rect(x, y, w, h)
        before = layer.surface.take_tiles(layer.surface.keys_in(rect))
        layer.surface.write(x, y, pixels)
        self.push_tiles_command(layer, before, rect, text)
        self.notify_pixels(layer, rect)
        return rect

    def add_metadata_entry(self, key: str, entry: Any, limit: int | None = None) -> None:
        """Append `entry` to the list ``metadata[key]`` (keeping the newest `limit`).

        Not an undo step, but a change: the document is unsaved and due for autosave.
        """
        entries = self.metadata.get(key)
        if not isinstance(entries, list):
            entries = self.metadata[key] = []
        entries.append(entry)
        if limit is not None:
            del entries[:-limit]
        self.history.note_change()

    def read_layer(self, layer: Layer, rect: Rect | None = None) -> np.ndarray:
        return layer.surface.read(rect or self.rect)

    # -- layer stack ----------------------------------------------------------------
    def _set_stack(self, layers: list[Layer], active: int) -> None:
        old_active = self.active_layer
        self.layers = list(layers)
        self.active_index = min(active, len(self.layers) - 1)
        self.layers_changed.emit()
        self.notify_pixels(None, self.rect)
        if self.active_layer is not old_active:
            self.active_changed.emit(self.active_layer)

    def _change_stack(self, layers: list[Layer], active: int, text: str) -> None:
        cmd = LayerStackCommand(self, self.layers, self.active_index, layers, active, text)
        cmd.redo()
        self.history.push(cmd)

    def add_layer(self, name: str | None = None, index: int | None = None,
                  layer: Layer | None = None) -> Layer:
        """Add a layer (a new empty one unless given) above the active layer, or at `index`."""
        layer = layer or Layer(name or self._unique_name("Layer"))
        if index is None:
            index = self.active_index + 1
        layers = list(self.layers)
        layers.insert(index, layer)
        self._change_stack(layers, index, f"Add layer “{layer.name}”")
        return layer

    def remove_layer(self, layer: Layer) -> None:
        idx = self.index_of(layer)
        layers = [candidate for candidate in self.layers if candidate is not layer]
        active = max(0, min(idx, len(layers) - 1)) if layers else -1
        self._change_stack(layers, active, f"Delete layer “{layer.name}”")

    def duplicate_layer(self, layer: Layer) -> Layer:
        copy = layer.duplicate()
        idx = self.index_of(layer)
        layers = list(self.layers)
        layers.insert(idx + 1, copy)
        self._change_stack(layers, idx + 1, f"Duplicate layer “{layer.name}”")
        return copy

    def move_layer(self, layer: Layer, new_index: int) -> None:
        idx = self.index_of(layer)
        new_index = max(0, min(new_index, len(self.layers) - 1))
        if new_index == idx:
            return
        layers = list(self.layers)
        layers.pop(idx)
        layers.insert(new_index, layer)
        active_layer = self.active_layer
        active = layers.index(active_layer) if active_layer in layers else new_index
        self._change_stack(layers, active, f"Move layer “{layer.name}”")

    def set_layer_properties(self, layer: Layer, **props: Any) -> None:
        unknown = set(props) - set(_LAYER_PROPS)
        if unknown:
            raise ValueError(f"unknown layer properties: {sorted(unknown)}")
        if "is_sketch" in props:  # the old flag: undo restores the whole role it replaced
            props["role"] = with_sketch(props.get("role", layer.role), bool(props.pop("is_sketch")))
        if "blend_mode" in props:
            props["blend_mode"] = BlendMode(props["blend_mode"])
        if "opacity" in props:
            props["opacity"] = float(min(1.0, max(0.0, props["opacity"])))
        before = {k: getattr(layer, k) for k in props}
        if before == props:
            return
        cmd = LayerPropertiesCommand(self, layer, before, dict(props), _describe(layer, props))
        cmd.redo()
        self.history.push(cmd)

    def _apply_properties(self, layer: Layer, props: dict[str, Any]) -> None:
        for k, v in props.items():
            setattr(layer, k, v)
        self.layers_changed.emit()
        if set(props) & {"opacity", "visible", "blend_mode"}:
            self.notify_pixels(None, self.rect)

    def merge_down(self, layer: Layer) -> Layer:
        """Merge `layer` into the layer below it (one undo step). Returns the merged layer."""
        from canvasai.document.compositing import composite_layers

        idx = self.index_of(layer)
        if idx == 0:
            raise ValueError("there is no layer below to merge into")
        below = self.layers[idx - 1]
        region = layer.surface.bounds().union(
            below.surface.bounds() if not below.surface.fill.any() else self.rect
        ).intersect(self.rect)
        # The lower layer's opacity is baked into the pixels (its blend mode is kept).
        merged = composite_layers([below, layer], region, respect_visibility=False,
                                  bottom_as_normal=True)
        before = below.surface.take_tiles(below.surface.keys_in(region))
        below.surface.write(region.x, region.y, merged)
        below.surface.prune()
        pixels = TilesCommand(self, below, before, region, "merge")
        props = LayerPropertiesCommand(self, below, {"opacity": below.opacity}, {"opacity": 1.0}, "merge")
        props.redo()
        layers = [candidate for candidate in self.layers if candidate is not layer]
        stack = LayerStackCommand(self, self.layers, self.active_index, layers, idx - 1, "merge")
        stack.redo()
        self.history.push(MacroCommand(f"Merge “{layer.name}” down", [pixels, props, stack]))
        return below

    def flatten(self) -> Layer:
        """Replace every layer by one holding the composite (one undo step)."""
        from canvasai.document.compositing import composite_layers

        flat = Layer("Flattened")
        pixels = composite_layers(self.layers, self.rect)
        flat.surface.write(0, 0, pixels)
        flat.surface.prune()
        self._change_stack([flat], 0, "Flatten image")
        return flat

    def _unique_name(self, base: str) -> str:
        """"Layer N" with N one past the highest number in use: no number skipped (the
        Background layer does not count), none reused while its layer exists."""
        prefix = f"{base} "
        used = [int(la.name[len(prefix):]) for la in self.layers
                if la.name.startswith(prefix) and la.name[len(prefix):].isdigit()]
        return f"{base} {max(used, default=0) + 1}"


_PROP_LABELS = {"opacity": "opacity", "blend_mode": "blend mode", "role": "role"}


def snapshot_document(doc: Document, metadata: bool = True) -> Document:
    """A copy of `doc` (layers, mask, selection, and with `metadata` its metadata) that
    later edits of `doc` cannot change, for work on another thread: saves, job planning.

    Copy-on-write: each surface's `snapshot` freezes its tiles and shares them (O(tiles),
    no pixel copies; a later stroke copies the tile it touches first). The layers keep
    their ids, so what is planned on the copy names the live layers. Must run on the
    thread that edits `doc` (the GUI thread).
    """
    snap = Document(doc.width, doc.height, background=None)
    snap.layers = [
        Layer(name=la.name, surface=la.surface.snapshot(), opacity=la.opacity,
              visible=la.visible, blend_mode=la.blend_mode, locked=la.locked, role=la.role,
              generation=copy.deepcopy(la.generation), id=la.id)
        for la in doc.layers
    ]
    snap.active_index = doc.active_index if snap.layers else -1
    snap.mask = doc.mask.snapshot()
    snap.selection = doc.selection.snapshot() if doc.selection is not None else None
    if metadata:
        snap.metadata = copy.deepcopy(doc.metadata)
    return snap


def _describe(layer: Layer, props: dict[str, Any]) -> str:
    """History text for a property change, e.g. “Hide “Sky”” or “Layer opacity”."""
    if set(props) == {"name"}:
        return f"Rename layer to “{props['name']}”"
    if set(props) == {"visible"}:
        return f"{'Show' if props['visible'] else 'Hide'} “{layer.name}”"
    if set(props) == {"locked"}:
        return f"{'Lock' if props['locked'] else 'Unlock'} “{layer.name}”"
    if set(props) == {"role"}:
        role = props["role"]
        return (f"Use “{layer.name}” as a {role.type} layer" if role is not None
                else f"“{layer.name}” back to a normal layer")
    what = ", ".join(_PROP_LABELS.get(k, k) for k in props)
    return f"Layer {what}: “{layer.name}”"
