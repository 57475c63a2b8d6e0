"""Loading the hand-drawn SVG icons and the stylesheet shipped as package data."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from canvasai.core.paths import RESOURCES


def icon(name: str) -> QIcon:
    """The icon resources/icons/<name>.svg, or an empty icon if it is missing."""
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet() -> str:
    path = RESOURCES / "style.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""
