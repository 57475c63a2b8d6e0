"""The set of tools, by name, in the order the tools panel shows them."""

from __future__ import annotations

from canvasai.tools.base import Tool, ToolContext
from canvasai.tools.brush import BrushTool, EraserTool, MaskBrushTool, MaskEraserTool
from canvasai.tools.fill import FillTool
from canvasai.tools.frame import FrameTool
from canvasai.tools.move import MoveTool
from canvasai.tools.picker import ColorPickerTool
from canvasai.tools.select import LassoSelectTool, RectSelectTool
from canvasai.tools.transform import TransformTool

TOOL_CLASSES: tuple[type[Tool], ...] = (
    BrushTool, EraserTool, MaskBrushTool, MaskEraserTool, RectSelectTool, LassoSelectTool,
    FillTool, ColorPickerTool, MoveTool, TransformTool, FrameTool,
)


def make_tools(ctx: ToolContext) -> dict[str, Tool]:
    return {cls.name: cls(ctx) for cls in TOOL_CLASSES}
