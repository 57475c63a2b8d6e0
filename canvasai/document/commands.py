"""Undo commands for the document. Each stores only what it must to swap back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canvasai.core.geometry import Rect
from canvasai.document.history import Command
from canvasai.document.tiles import TiledSurface, TileKey

if TYPE_CHECKING:
    import numpy as np

    from canvasai.document.document import Document
    from canvasai.document.layer import Layer


class TilesCommand(Command):
    """Pixel edits on one surface (a layer's or the mask): holds the touched tiles' other state.

    Created after the edit with the tiles as they were *before* it; undo and redo
    both swap, so exactly one copy of the touched tiles is kept.
    """

    def __init__(self, doc: Document, target: Layer | str, before: dict[TileKey, np.ndarray | None],
                 rect: Rect, text: str) -> None:
        self.doc = doc
        self.target = target
        self.stored = before
        self.rect = rect
        self.text = text

    def _surface(self) -> TiledSurface:
        if isinstance(self.target, str):
            return self.doc.mask
        return self.target.surface

    def _swap(self) -> None:
        self.stored = self._surface().swap_tiles(self.stored)
        if isinstance(self.target, str):
            self.doc.mask_changed.emit(self.rect)
        else:
            self.doc.notify_pixels(self.target, self.rect)

    undo = _swap
    redo = _swap

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.stored.values() if t is not None)


class LayerStackCommand(Command):
    """A change of the layer list (add, delete, reorder, merge): swaps whole lists."""

    def __init__(self, doc: Document, before: list[Layer], before_active: int,
                 after: list[Layer], after_active: int, text: str) -> None:
        self.doc = doc
        self.before = (list(before), before_active)
        self.after = (list(after), after_active)
        self.text = text

    def undo(self) -> None:
        self.doc._set_stack(*self.before)

    def redo(self) -> None:
        self.doc._set_stack(*self.after)

    @property
    def nbytes(self) -> int:
        # Layers only in one of the two lists are kept alive by this command.
        b, a = set(self.before[0]), set(self.after[0])
        return sum(layer.surface.nbytes for layer in b ^ a)


class LayerPropertiesCommand(Command):
    def __init__(self, doc: Document, layer: Layer, before: dict[str, Any],
                 after: dict[str, Any], text: str) -> None:
        self.doc = doc
        self.layer = layer
        self.before = before
        self.after = after
        self.text = text

    def undo(self) -> None:
        self.doc._apply_properties(self.layer, self.before)

    def redo(self) -> None:
        self.doc._apply_properties(self.layer, self.after)


class SelectionCommand(Command):
    """Swap the whole selection surface (None = no selection)."""

    def __init__(self, doc: Document, before: TiledSurface | None, text: str) -> None:
        self.doc = doc
        self.stored = before
        self.text = text

    def _swap(self) -> None:
        self.stored, self.doc.selection = self.doc.selection, self.stored
        self.doc.selection_changed.emit(self.doc.rect)

    undo = _swap
    redo = _swap

    @property
    def nbytes(self) -> int:
        return self.stored.nbytes if self.stored is not None else 0


class MaskReplaceCommand(Command):
    """Swap the whole mask surface (mask from selection, clear mask)."""

    def __init__(self, doc: Document, before: TiledSurface, text: str) -> None:
        self.doc = doc
        self.stored = before
        self.text = text

    def _swap(self) -> None:
        self.stored, self.doc.mask = self.doc.mask, self.stored
        self.doc.mask_changed.emit(self.doc.rect)

    undo = _swap
    redo = _swap

    @property
    def nbytes(self) -> int:
        return self.stored.nbytes
