"""Pointer events, the context tools work in, and the tool base class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.outpaint_frame import OutpaintFrame

LEFT, RIGHT, MIDDLE = 1, 2, 4


@dataclass(frozen=True)
class PointerEvent:
    """A pointer sample in document coordinates (the canvas widget converts Qt events)."""

    x: float
    y: float
    pressure: float = 1.0  # 0..1; a mouse reports 1
    tilt_x: float = 0.0
    tilt_y: float = 0.0
    buttons: int = LEFT
    modifiers: frozenset[str] = frozenset()  # "shift", "ctrl", "alt"


@dataclass
class BrushSettings:
    size: float = 24.0  # diameter in document pixels
    hardness: float = 0.8  # 0 = soft, 1 = hard edge
    opacity: float = 1.0  # stroke opacity (wash: dabs never build past it)
    flow: float = 1.0  # per-dab alpha
    spacing: float = 0.12  # dab spacing as a fraction of the diameter
    pressure_size: bool = True
    pressure_opacity: bool = True
    min_size_fraction: float = 0.1  # size at zero pressure
    pressure_curve: float = 1.0  # exponent (the editing/pressure_curve setting): <1 soft, >1 firm

    def pressure(self, raw: float) -> float:
        """The pen's pressure through the curve, in 0..1."""
        p = max(0.0, min(1.0, raw))
        return p ** self.pressure_curve if self.pressure_curve != 1.0 else p


@dataclass
class ToolContext:
    """What tools need from the application, without knowing about Qt."""

    doc: Document
    compositor: Compositor
    brush: BrushSettings = field(default_factory=BrushSettings)
    foreground: tuple[int, int, int] = (0, 0, 0)
    background: tuple[int, int, int] = (255, 255, 255)
    fill_tolerance: int = 32  # 0..255
    fill_sample_merged: bool = False
    status: Callable[[str], None] = lambda message: None
    on_color_picked: Callable[[tuple[int, int, int]], None] | None = None
    frame: OutpaintFrame = field(default_factory=OutpaintFrame)  # shared with the generation panel


class Tool:
    """Base class. Tools receive press / move / release and change the document."""

    name = "tool"
    label = "Tool"
    shortcut = ""
    shows_brush_outline = False

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx

    def press(self, ev: PointerEvent) -> None: ...

    def move(self, ev: PointerEvent) -> None: ...

    def release(self, ev: PointerEvent) -> None: ...

    def cancel(self) -> None:
        """Abandon an operation in progress (e.g. Esc, or the document was replaced)."""

    def overlay(self) -> list[tuple[str, object]]:
        """Shapes to draw over the canvas while the tool works: ("rect", Rect) or ("polygon", pts)."""
        return []
