"""Loading the hand-drawn SVG icons and the stylesheet shipped as package data."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from canvasai.core.paths import RESOURCES


def icon(name: str) -> QIcon:
    """The icon resources/icons/<name>.svg, or an empty icon if it is missing."""
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet() -> str:
    """The style sheet, its ``url(icons/…)`` pointing at the package's icon folder."""
    path = RESOURCES / "style.qss"
    if not path.is_file():
        return ""
    folder = (RESOURCES / "icons").as_posix()
    return path.read_text(encoding="utf-8").replace("url(icons/", f"url({folder}/")
