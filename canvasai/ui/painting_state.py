"""The brush and the two colours, kept between sessions in the settings model.

A painter expects to find the brush they left: its size, hardness, opacity and flow,
and the foreground/background colours. `restore` runs when the window is built,
`remember` when it closes (with the window layout).
"""

from __future__ import annotations

from typing import Any

from canvasai.core import settings

RGB = tuple[int, int, int]


def _parse_hex(text: str, fallback: RGB) -> RGB:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        return fallback
    try:
        return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))
    except ValueError:
        return fallback


def _hex(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c[:3]))


def restore(brush: Any, color_panel: Any, tools_panel: Any | None = None) -> None:
    """Put the stored brush settings into `brush` and the colours into `color_panel`."""
    e = settings.current().editing
    brush.size = float(e.brush_size)
    brush.hardness = float(e.brush_hardness)
    brush.opacity = float(e.brush_opacity)
    brush.flow = float(e.brush_flow)
    color_panel.set_foreground(_parse_hex(e.foreground, (0, 0, 0)))
    color_panel.set_background(_parse_hex(e.background, (255, 255, 255)))
    if tools_panel is not None:
        tools_panel.sync_from_brush()


def remember(brush: Any, color_panel: Any) -> None:
    """Store the brush and colours for the next launch."""
    settings.update(**{
        "editing/brush_size": float(brush.size),
        "editing/brush_hardness": float(brush.hardness),
        "editing/brush_opacity": float(brush.opacity),
        "editing/brush_flow": float(brush.flow),
        "editing/foreground": _hex(color_panel.foreground),
        "editing/background": _hex(color_panel.background),
    })
