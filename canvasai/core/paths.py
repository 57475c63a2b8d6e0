"""Where CanvasAI's files live: the package's own resources and the per-user data folder.

Decided here once; every layer asks this module (the settings model may override the
data folder, see `canvasai.core.settings`).
"""

from __future__ import annotations

from pathlib import Path

#: Package data shipped inside the wheel: style sheet, icons, config-only model folders.
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def resource(*parts: str) -> Path:
    """A path inside the package's resources folder."""
    return RESOURCES.joinpath(*parts)


def data_dir() -> Path:
    """CanvasAI's per-user data folder: the `files/data_dir` setting ($CANVASAI_DATA_DIR),
    else platformdirs' user data dir (e.g. ~/.local/share/CanvasAI)."""
    from canvasai.core import settings

    override = settings.current().files.data_dir
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("CanvasAI", appauthor=False))
