from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.base import PointerEvent, ToolContext
from canvasai.tools.frame import FrameTool


def test_dragging_edges_sets_snapped_margins():
    doc = Document(200, 100)
    tool = FrameTool(ToolContext(doc, Compositor(doc)))
    seen = []
    tool.frame.on_change.append(seen.append)
    tool.press(PointerEvent(199, 50))
    tool.move(PointerEvent(262, 50))
    tool.release(PointerEvent(262, 50))
    assert tool.frame.margins == (0, 0, 64, 0)
    assert tool.frame.rect(doc.rect) == Rect(0, 0, 264, 100)
    tool.press(PointerEvent(-10, -10))  # outside the top-left corner: both edges
    tool.move(PointerEvent(-42, -26))
    tool.release(PointerEvent(-42, -26))
    assert tool.frame.margins == (32, 16, 64, 0) and seen
    tool.press(PointerEvent(100, 50))  # the middle of the canvas grabs nothing
    tool.move(PointerEvent(300, 300))
    assert tool.frame.margins == (32, 16, 64, 0)
