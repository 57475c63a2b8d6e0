"""Loading the hand-drawn SVG icons and the stylesheet shipped next to this module."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

RESOURCES = Path(__file__).resolve().parent / "resources"


def icon(name: str) -> QIcon:
    """The icon resources/icons/<name>.svg, or an empty icon if it is missing."""
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet() -> str:
    path = RESOURCES / "style.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""
