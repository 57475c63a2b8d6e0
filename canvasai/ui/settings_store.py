"""QSettings behind the one settings model (`canvasai.core.settings`).

The model is flat ``section/field`` keys with plain values; QSettings may hand back strings
(INI backends) or single strings for one-element lists, which the model's coercion accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QSettings

from canvasai.core.settings import Settings


class QSettingsStore:
    """Reads and writes the model's keys in the application's QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._qs = qsettings

    def _settings(self) -> QSettings:
        return self._qs if self._qs is not None else QSettings()

    def read(self) -> dict[str, Any]:
        qs = self._settings()
        known = Settings().to_flat()
        return {key: qs.value(key) for key in known if qs.contains(key)}

    def write(self, values: Mapping[str, Any]) -> None:
        qs = self._settings()
        for key, value in values.items():
            qs.setValue(key, list(value) if isinstance(value, tuple) else value)
        qs.sync()
