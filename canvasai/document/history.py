"""Command-based undo with a memory budget instead of a fixed entry count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from canvasai.core.events import EventEmitter

DEFAULT_UNDO_BUDGET = 1024 * 1024 * 1024  # bytes of pixel data kept for undo


class Command:
    """One undoable change. Subclasses implement undo/redo and report their memory."""

    text: str = "Edit"

    def undo(self) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return 0


class MacroCommand(Command):
    """Several commands undone and redone as one step."""

    def __init__(self, text: str, commands: list[Command]) -> None:
        self.text = text
        self.commands = commands

    def undo(self) -> None:
        for c in reversed(self.commands):
            c.undo()

    def redo(self) -> None:
        for c in self.commands:
            c.redo()

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.commands)


class History:
    """Undo/redo stacks. `push` records an already-applied command.

    The oldest entries are dropped when the total bytes held exceed `budget`, but
    the newest entry is always kept, whatever its size.
    """

    def __init__(self, budget: int = DEFAULT_UNDO_BUDGET) -> None:
        self.budget = budget
        self._undo: list[Command] = []
        self._redo: list[Command] = []
        self.changed = EventEmitter()  # no args: the stacks changed
        self.clean_index = 0  # len(_undo) at the last save
        self.revision = 0  # bumps on every change (autosave uses it)
        self._unsaved_extra = False  # a change with no undo step (see note_change)
        self._open_macro: list[Command] | None = None

    @contextmanager
    def macro(self, text: str) -> Iterator[None]:
        """Group every command pushed inside the block into one undo step.

        If the block raises, the commands already applied are undone and nothing is
        recorded, so a failed multi-step edit leaves the document as it was.
        """
        if self._open_macro is not None:  # nested: the outer macro collects everything
            yield
            return
        self._open_macro = collected = []
        try:
            yield
        except BaseException:
            self._open_macro = None
            for c in reversed(collected):
                c.undo()
            raise
        self._open_macro = None
        if collected:
            self.push(collected[0] if len(collected) == 1 else MacroCommand(text, collected))

    def push(self, command: Command) -> None:
        if self._open_macro is not None:
            self._open_macro.append(command)
            return
        self._undo.append(command)
        self._redo.clear()
        self._trim()
        self.revision += 1
        self.changed.emit()

    def undo(self) -> bool:
        if not self._undo:
            return False
        c = self._undo.pop()
        c.undo()
        self._redo.append(c)
        self.revision += 1
        self.changed.emit()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        c = self._redo.pop()
        c.redo()
        self._undo.append(c)
        self.revision += 1
        self.changed.emit()
        return True

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    @property
    def entries(self) -> list[str]:
        """Texts of the undoable commands, oldest first."""
        return [c.text for c in self._undo]

    @property
    def redo_entries(self) -> list[str]:
        return [c.text for c in reversed(self._redo)]

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._undo) + sum(c.nbytes for c in self._redo)

    def note_change(self) -> None:
        """Record a change that has no undo step (e.g. a generation-history entry): the
        document is unsaved and due for autosave until the next `mark_clean`."""
        self._unsaved_extra = True
        self.revision += 1
        self.changed.emit()

    def mark_clean(self) -> None:
        self.clean_index = len(self._undo)
        self._unsaved_extra = False

    @property
    def is_clean(self) -> bool:
        return self.clean_index == len(self._undo) and not self._unsaved_extra

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self.clean_index = 0
        self._unsaved_extra = False
        self.changed.emit()

    def _trim(self) -> None:
        total = self.nbytes
        while len(self._undo) > 1 and total > self.budget:
            dropped = self._undo.pop(0)
            total -= dropped.nbytes
            self.clean_index -= 1
