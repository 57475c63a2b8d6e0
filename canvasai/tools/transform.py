"""The transform tool: move, scale and rotate the active layer, or the selection's pixels.

Pure geometry and state, no Qt. A `TransformBox` says where a source rectangle goes
(its centre, signed size, angle); the drag functions turn a handle drag into a new
box. The tool lifts what it transforms into a floating piece when the person first
grabs it (the hole it leaves is transparent), keeps the layer otherwise untouched
while handles are dragged (the canvas draws `overlay()`: the quad, the handles and
a low-resolution preview), and resamples at full quality once, on commit, as ONE
undo step. Cancel puts the original tiles back, so nothing changes.

The commit is split so the UI can resample off its thread: `begin_commit()` returns
a `TransformJob` whose `run()` is pure NumPy/OpenCV, and `finish_commit(job, result)`
writes the result and records the undo step. `commit()` does both at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.commands import SelectionCommand, TilesCommand
from canvasai.document.history import Command, MacroCommand
from canvasai.document.layer import Layer
from canvasai.document.selection import selection_bounds
from canvasai.document.tiles import TiledSurface
from canvasai.tools.base import PointerEvent, Tool

#: Scale handles: name -> (x, y) side of the box, each -1, 0 or +1.
HANDLES: dict[str, tuple[int, int]] = {
    "nw": (-1, -1), "n": (0, -1), "ne": (1, -1), "e": (1, 0),
    "se": (1, 1), "s": (0, 1), "sw": (-1, 1), "w": (-1, 0),
}
MOVE = "move"
ROTATE = "rotate"
HANDLE_HIT_PX = 8.0  # how close (screen px) a press must be to grab a handle
ROTATE_STEM_PX = 28.0  # the rotate knob sits this far (screen px) above the top edge
SNAP_DEGREES = 15.0
PREVIEW_MAX_SIDE = 1024  # the preview drawn while dragging is at most this big
MIN_SIZE = 1.0  # document px: a side never shrinks below this


@dataclass(frozen=True)
class TransformBox:
    """Where `source` goes: its centre, its signed size (negative = mirrored) and its
    angle in degrees (clockwise on screen, y pointing down). Rotation is about the centre."""

    source: Rect
    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0

    @classmethod
    def identity(cls, source: Rect) -> TransformBox:
        return cls(source, source.x + source.w / 2, source.y + source.h / 2,
                   float(source.w), float(source.h), 0.0)

    # -- mapping --------------------------------------------------------------------
    @property
    def scale_x(self) -> float:
        return self.width / self.source.w

    @property
    def scale_y(self) -> float:
        return self.height / self.source.h

    def _cos_sin(self) -> tuple[float, float]:
        a = math.radians(self.angle)
        return math.cos(a), math.sin(a)

    def to_world(self, lx: float, ly: float) -> tuple[float, float]:
        """A point of the box's own frame (origin at the centre, unrotated) in the document."""
        c, s = self._cos_sin()
        return self.cx + c * lx - s * ly, self.cy + s * lx + c * ly

    def to_local(self, x: float, y: float) -> tuple[float, float]:
        c, s = self._cos_sin()
        dx, dy = x - self.cx, y - self.cy
        return c * dx + s * dy, -s * dx + c * dy

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix taking source document coordinates to transformed ones."""
        c, s = self._cos_sin()
        sx, sy = self.scale_x, self.scale_y
        a = np.array([[c * sx, -s * sy], [s * sx, c * sy]], np.float64)
        src_c = np.array([self.source.x + self.source.w / 2, self.source.y + self.source.h / 2])
        t = np.array([self.cx, self.cy]) - a @ src_c
        return np.hstack([a, t[:, None]])

    def handle_point(self, name: str) -> tuple[float, float]:
        hx, hy = HANDLES[name]
        return self.to_world(hx * self.width / 2, hy * self.height / 2)

    def corners(self) -> list[tuple[float, float]]:
        """The transformed source corners: top-left, top-right, bottom-right, bottom-left."""
        return [self.handle_point(n) for n in ("nw", "ne", "se", "sw")]

    def rotate_knob(self, pixel_size: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
        """(top-middle of the box, the rotate knob above it), for a view where one screen
        pixel is `pixel_size` document pixels."""
        hy = -abs(self.height) / 2
        return self.to_world(0.0, hy), self.to_world(0.0, hy - ROTATE_STEM_PX * pixel_size)

    def bounds(self) -> Rect:
        """The document pixels the transformed source touches (rounded outwards)."""
        xs, ys = zip(*self.corners(), strict=True)
        eps = 1e-6
        return Rect.from_bounds(math.floor(min(xs) + eps), math.floor(min(ys) + eps),
                                math.ceil(max(xs) - eps), math.ceil(max(ys) - eps))

    def contains(self, x: float, y: float) -> bool:
        lx, ly = self.to_local(x, y)
        return abs(lx) <= abs(self.width) / 2 and abs(ly) <= abs(self.height) / 2

    @property
    def is_identity(self) -> bool:
        return self == TransformBox.identity(self.source)

    def integer_offset(self) -> tuple[int, int] | None:
        """(dx, dy) when the box is the source moved by whole pixels, else None: such a
        move copies the pixels exactly, without resampling."""
        if self.width != self.source.w or self.height != self.source.h or self.angle % 360:
            return None
        dx = self.cx - (self.source.x + self.source.w / 2)
        dy = self.cy - (self.source.y + self.source.h / 2)
        if abs(dx - round(dx)) > 1e-9 or abs(dy - round(dy)) > 1e-9:
            return None
        return round(dx), round(dy)

    # -- numeric entry ------------------------------------------------------------------
    @property
    def left(self) -> float:
        """x of the unrotated box's left edge (the visible left edge when not rotated)."""
        return self.cx - abs(self.width) / 2

    @property
    def top(self) -> float:
        return self.cy - abs(self.height) / 2

    def with_values(self, x: float | None = None, y: float | None = None,
                    width: float | None = None, height: float | None = None,
                    angle: float | None = None) -> TransformBox:
        """The box with a new left/top (of the unrotated box), size and angle; a size keeps
        its mirroring sign and the centre stays put unless x/y are given."""
        w = self.width if width is None else math.copysign(max(MIN_SIZE, abs(width)), self.width)
        h = self.height if height is None else math.copysign(max(MIN_SIZE, abs(height)), self.height)
        cx = self.cx if x is None else x + abs(w) / 2
        cy = self.cy if y is None else y + abs(h) / 2
        ang = self.angle if angle is None else normalise_angle(angle)
        return replace(self, cx=cx, cy=cy, width=w, height=h, angle=ang)


def normalise_angle(deg: float) -> float:
    """The same angle in (-180, 180]."""
    a = math.fmod(deg, 360.0)
    if a <= -180.0:
        a += 360.0
    elif a > 180.0:
        a -= 360.0
    return 0.0 if a == 0 else a


def hit_test(box: TransformBox, x: float, y: float, pixel_size: float = 1.0) -> str:
    """What a press at (x, y) grabs: a handle name, ROTATE (the knob, or anywhere outside
    the box, as in Krita and Photoshop) or MOVE (inside)."""
    tol = HANDLE_HIT_PX * pixel_size
    _, knob = box.rotate_knob(pixel_size)
    if math.dist(knob, (x, y)) <= tol:
        return ROTATE
    inside = box.contains(x, y)
    if inside:  # a small box keeps its middle for moving
        tol = min(tol, 0.25 * min(abs(box.width), abs(box.height)))
    best, best_d = None, tol
    for name in ("nw", "ne", "se", "sw", "n", "e", "s", "w"):  # corners win a tie
        d = math.dist(box.handle_point(name), (x, y))
        if d < best_d or (best is None and d <= tol):
            best, best_d = name, d
    if best is not None:
        return best
    return MOVE if inside else ROTATE


def drag_scale(box: TransformBox, handle: str, x: float, y: float,
               keep_aspect: bool = False, from_centre: bool = False) -> TransformBox:
    """`box` with scale handle `handle` dragged to (x, y): the opposite side (or, with
    `from_centre`, the centre) stays; `keep_aspect` keeps the width:height ratio."""
    hx, hy = HANDLES[handle]
    w0, h0 = box.width, box.height
    qx, qy = box.to_local(x, y)
    ax, ay = (0.0, 0.0) if from_centre else (-hx * w0 / 2, -hy * h0 / 2)
    k = 2.0 if from_centre else 1.0
    w = hx * (qx - ax) * k if hx else w0
    h = hy * (qy - ay) * k if hy else h0
    if keep_aspect:
        if hx and hy:  # project the pointer onto the diagonal through the anchor
            dx, dy = hx * w0 / 2 * (1 if from_centre else 2), hy * h0 / 2 * (1 if from_centre else 2)
            f = ((qx - ax) * dx + (qy - ay) * dy) / (dx * dx + dy * dy)
            w, h = f * w0, f * h0
        elif hx:
            h = h0 * w / w0
        else:
            w = w0 * h / h0
    w = w if abs(w) >= MIN_SIZE else math.copysign(MIN_SIZE, w0 if w == 0 else w)
    h = h if abs(h) >= MIN_SIZE else math.copysign(MIN_SIZE, h0 if h == 0 else h)
    cxl = ax + hx * w / 2 if hx and not from_centre else 0.0
    cyl = ay + hy * h / 2 if hy and not from_centre else 0.0
    cx, cy = box.to_world(cxl, cyl)
    return replace(box, cx=cx, cy=cy, width=w, height=h)


def drag_rotate(box: TransformBox, start: tuple[float, float], x: float, y: float,
                snap: bool = False) -> TransformBox:
    """`box` turned by the angle the pointer swept around its centre since `start`;
    `snap` rounds the resulting angle to 15° steps."""
    a0 = math.atan2(start[1] - box.cy, start[0] - box.cx)
    a1 = math.atan2(y - box.cy, x - box.cx)
    angle = box.angle + math.degrees(a1 - a0)
    if snap:
        angle = round(angle / SNAP_DEGREES) * SNAP_DEGREES
    return replace(box, angle=normalise_angle(angle))


def drag_move(box: TransformBox, start: tuple[float, float], x: float, y: float,
              constrain: bool = False) -> TransformBox:
    """`box` moved by the pointer's travel since `start` (whole pixels, so a plain move
    copies pixels exactly); `constrain` keeps to the main axis."""
    dx, dy = round(x - start[0]), round(y - start[1])
    if constrain:
        if abs(dx) >= abs(dy):
            dy = 0
        else:
            dx = 0
    return replace(box, cx=box.cx + dx, cy=box.cy + dy)


# -- pixels -------------------------------------------------------------------------------
def _premultiplied(pixels: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    b, g, r, a = (c.astype(np.float32) for c in cv2.split(pixels))
    a *= 1.0 / 255.0
    return [cv2.multiply(c, a) for c in (b, g, r)], a


def _straight(colour: list[np.ndarray], a: np.ndarray) -> np.ndarray:
    inv = np.zeros_like(a)
    np.divide(1.0, a, out=inv, where=a > 1e-6)  # the raw alpha (see resample_rgba)
    chans = [cv2.convertScaleAbs(cv2.max(cv2.multiply(c, inv), 0.0)) for c in colour]
    chans.append(cv2.convertScaleAbs(cv2.max(a, 0.0), alpha=255.0))
    out = cv2.merge(chans)
    out[chans[3] == 0] = 0
    return out


def _pixel_matrix(box: TransformBox, out: Rect, prescale: tuple[float, float]) -> np.ndarray:
    """The affine map from (pre-scaled) source array indices to output array indices
    (OpenCV samples at pixel centres)."""
    m = box.matrix()
    a, t = m[:, :2], m[:, 2]
    rx, ry = prescale
    a2 = a @ np.diag([1.0 / rx, 1.0 / ry])
    src = box.source
    t2 = a2 @ np.array([0.5, 0.5]) + a @ np.array([src.x, src.y], np.float64) + t \
        - np.array([out.x, out.y], np.float64) - 0.5
    return np.hstack([a2, t2[:, None]])


def _prescaled(planes: list[np.ndarray], box: TransformBox) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Shrink first by area averaging where the box makes the source smaller, so a
    strong reduction does not alias (warpAffine only interpolates)."""
    src = box.source
    fx, fy = min(1.0, abs(box.scale_x)), min(1.0, abs(box.scale_y))
    if fx >= 1.0 and fy >= 1.0:
        return planes, (1.0, 1.0)
    w, h = max(1, round(src.w * fx)), max(1, round(src.h * fy))
    out = [cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA) for p in planes]
    return out, (w / src.w, h / src.h)


def transform_rgba(pixels: np.ndarray, box: TransformBox) -> tuple[Rect, np.ndarray]:
    """Resample straight RGBA `pixels` (the source rect of `box`) into the box: returns
    the rect it covers and its straight RGBA pixels. Through premultiplied colour, so
    edges get no dark fringes; a whole-pixel move is an exact copy."""
    offset = box.integer_offset()
    if offset is not None:
        return box.source.translated(*offset), pixels.copy()
    out = box.bounds()
    if out.is_empty():
        return out, np.zeros((0, 0, 4), np.uint8)
    colour, alpha = _premultiplied(pixels)
    planes, pre = _prescaled([*colour, alpha], box)
    m = _pixel_matrix(box, out, pre)
    upscale = abs(box.scale_x) > 1.0 or abs(box.scale_y) > 1.0
    interp = cv2.INTER_CUBIC if upscale else cv2.INTER_LINEAR
    warped = [cv2.warpAffine(p, m, (out.w, out.h), flags=interp,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) for p in planes]
    return out, _straight(warped[:3], warped[3])


def transform_coverage(values: np.ndarray, box: TransformBox) -> tuple[Rect, np.ndarray]:
    """The same transform for a 1-channel coverage (selection) array."""
    offset = box.integer_offset()
    if offset is not None:
        return box.source.translated(*offset), values.copy()
    out = box.bounds()
    if out.is_empty():
        return out, np.zeros((0, 0), np.uint8)
    planes, pre = _prescaled([values.astype(np.float32)], box)
    m = _pixel_matrix(box, out, pre)
    warped = cv2.warpAffine(planes[0], m, (out.w, out.h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, cv2.convertScaleAbs(warped)


def over(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Straight RGBA `src` composited over straight RGBA `dst` (same shape). Where `src`
    is transparent `dst` is kept exactly, where it is opaque `src` is."""
    sa = src[..., 3:4].astype(np.float32) / 255.0
    da = dst[..., 3:4].astype(np.float32) / 255.0
    oa = sa + da * (1.0 - sa)
    rgb = src[..., :3] * sa + dst[..., :3] * (da * (1.0 - sa))
    inv = np.zeros_like(oa)
    np.divide(1.0, oa, out=inv, where=oa > 1e-6)
    out = np.empty_like(dst)
    out[..., :3] = np.clip(np.rint(rgb * inv), 0, 255)
    out[..., 3:4] = np.clip(np.rint(oa * 255.0), 0, 255)
    out[oa[..., 0] <= 1e-6] = 0
    keep, take = src[..., 3] == 0, src[..., 3] == 255
    out[keep] = dst[keep]
    out[take] = src[take]
    return out


def lifted_piece(original: TiledSurface, source: Rect, coverage: np.ndarray | None) -> np.ndarray:
    """The floating piece: `source` of the layer as it was, times the selection's coverage."""
    piece = original.read(source)
    if coverage is not None:
        a = piece[..., 3].astype(np.uint16)
        piece[..., 3] = ((a * coverage + 127) // 255).astype(np.uint8)
        piece[piece[..., 3] == 0] = 0
    return piece


@dataclass
class TransformJob:
    """The pure part of a commit: resampling the floating piece (and the selection) into
    the box and compositing it over the layer with its hole, tile by tile. Safe to run on
    any thread: it reads frozen snapshots and returns new tiles, touching no live state."""

    original: TiledSurface  # the layer before the lift (frozen)
    holed: TiledSurface  # the layer with its hole, when the commit started (frozen)
    box: TransformBox
    coverage: np.ndarray | None = None
    abandoned: bool = False  # set when the person cancelled while it ran

    @property
    def pixels(self) -> int:
        """How many pixels the resample reads and writes (the UI decides threads by it)."""
        out = self.box.bounds()
        return self.box.source.w * self.box.source.h + max(0, out.w) * max(0, out.h)

    def run(self) -> TransformResult:
        piece = lifted_piece(self.original, self.box.source, self.coverage)
        rect, pixels = transform_rgba(piece, self.box)
        del piece
        tiles: dict[tuple[int, int], np.ndarray | None] = {}
        if not rect.is_empty():
            dst = self.holed.read(rect)
            merged = pixels if not dst[..., 3].any() else over(dst, pixels)
            del dst, pixels
            out = TiledSurface(4, self.holed.fill, self.holed.tile_size)
            for key in rect.tiles(out.tile_size):  # the hole's tiles under the edges
                tile = self.holed.tile(key)
                if tile is not None:
                    out.set_tile(key, tile)
            out.write(rect.x, rect.y, merged)  # copies a frozen tile before writing it
            fill = out.fill
            for key in rect.tiles(out.tile_size):
                tile = out.tile(key)
                tiles[key] = None if tile is None or (tile == fill).all() else tile
        sel = transform_coverage(self.coverage, self.box) if self.coverage is not None else None
        return TransformResult(rect, tiles, sel)


@dataclass
class TransformResult:
    rect: Rect  # what the transformed piece covers
    tiles: dict[tuple[int, int], np.ndarray | None]  # the layer's new tiles over `rect`
    selection: tuple[Rect, np.ndarray] | None = None


@dataclass
class _Floating:
    """What was lifted: the layer, the source rect and how to put it all back."""

    layer: Layer
    source: Rect
    preview: np.ndarray  # the piece, shrunk to at most PREVIEW_MAX_SIDE
    original: TiledSurface  # a copy-on-write snapshot of the layer before the lift
    coverage: np.ndarray | None  # the selection over `source` (None: the whole layer)
    history: list[TransformBox]  # the box after each drag or numeric change (Ctrl+Z steps back)


class TransformTool(Tool):
    """Move, scale and rotate the active layer, or the selection's pixels.

    Drag a side or corner handle to scale (Shift keeps the aspect, Alt scales about the
    centre), the knob above the box or anywhere outside it to rotate (Shift: 15° steps),
    inside to move (Shift: along one axis). Enter applies (one undo step), Esc cancels.
    """

    name = "transform"
    label = "Transform"
    shortcut = "Ctrl+T"

    def __init__(self, ctx) -> None:  # noqa: ANN001 - ToolContext
        super().__init__(ctx)
        self.pixel_size = 1.0  # document px per screen px (the canvas sets it from the zoom)
        self.box: TransformBox | None = None
        self._float: _Floating | None = None
        self._drag: tuple[str, TransformBox, tuple[float, float]] | None = None
        self._job: TransformJob | None = None
        self._idle: tuple[tuple, TransformBox | None, str] | None = None
        self.on_change: list[Callable[[], None]] = []  # box or state changed (numeric fields)

    # -- state -------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """A piece is lifted and waits to be applied or cancelled."""
        return self._float is not None

    def unlifted(self) -> tuple[Layer, TiledSurface] | None:
        """While a piece floats (or its commit runs): the layer and its pixels as they were
        before the lift. An autosave made meanwhile writes these, not the layer with its
        hole, so a crash before Enter loses nothing."""
        f = self._float
        return (f.layer, f.original) if f is not None else None

    @property
    def committing(self) -> bool:
        """The full-quality resample is running (input waits for it)."""
        return self._job is not None

    @property
    def running_job(self) -> TransformJob | None:
        """The commit's resample job while it runs elsewhere."""
        return self._job

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    @property
    def transforms_selection(self) -> bool:
        f = self._float
        return f.coverage is not None if f is not None else self.ctx.doc.selection is not None

    def current_box(self) -> TransformBox | None:
        """The box being transformed, or (before anything is lifted) the box around what a
        press would lift; None when there is nothing to transform."""
        if self.box is not None:
            return self.box
        return self._idle_state()[0]

    def why_not(self) -> str:
        """A sentence saying why there is nothing to transform ('' when there is)."""
        return "" if self.box is not None else self._idle_state()[1]

    def _notify(self) -> None:
        for cb in list(self.on_change):
            cb()

    def _idle_state(self) -> tuple[TransformBox | None, str]:
        doc = self.ctx.doc
        layer = doc.active_layer
        key = (id(layer), id(layer.surface) if layer else 0, id(doc.selection),
               doc.history.revision, doc.width, doc.height)
        if self._idle is None or self._idle[0] != key:
            source, why = self._source()
            self._idle = (key, TransformBox.identity(source) if source else None, why)
        return self._idle[1], self._idle[2]

    def _source(self) -> tuple[Rect | None, str]:
        doc = self.ctx.doc
        layer = doc.active_layer
        if layer is None:
            return None, "There is no layer to transform."
        if layer.locked:
            return None, f"Layer “{layer.name}” is locked."
        if doc.selection is not None:
            src = selection_bounds(doc)
            if src.is_empty():
                return None, "The selection is empty."
            if not layer.surface.fill.any():
                content = layer.surface.bounds().intersect(src)
                if content.is_empty():
                    return None, f"The selection holds no pixels of layer “{layer.name}”."
            return src, ""
        if layer.surface.fill.any():
            return None, "A filled background layer cannot be transformed whole: select part of it first."
        src = layer.surface.bounds()
        if src.is_empty():
            return None, f"Layer “{layer.name}” is empty: nothing to transform."
        return src, ""

    # -- lifting -----------------------------------------------------------------------
    def begin(self) -> bool:
        """Lift the selection's pixels (or the whole layer) into a floating piece, leaving
        a transparent hole. No undo step yet. False (and a status message) if impossible."""
        if self._float is not None:
            return True
        if self._job is not None:
            return False
        box, why = self._idle_state()
        layer = self.ctx.doc.active_layer
        if box is None or layer is None:
            self.ctx.status(why)
            return False
        src = box.source
        surf = layer.surface
        original = surf.snapshot()  # O(tiles): the tiles are frozen, not copied
        coverage = None
        if self.ctx.doc.selection is not None:
            coverage = self.ctx.doc.selection.read(src)[..., 0]
            hole = surf.read(src)
            a = hole[..., 3].astype(np.uint16)
            hole[..., 3] = ((a * (255 - coverage.astype(np.uint16)) + 127) // 255).astype(np.uint8)
            hole[hole[..., 3] == 0] = 0
            surf.write(src.x, src.y, hole)
            del hole, a
            if not surf.fill.any():
                surf.prune()
            preview = _preview_from(original, src, coverage)
        else:
            # The source is the layer's whole content: its tiles simply go (outside the
            # content bounds they hold only transparent pixels).
            surf.swap_tiles({k: None for k in src.tiles(surf.tile_size) if surf.has_tile(k)})
            preview = _preview_from(original, src)
        self._float = _Floating(layer, src, preview, original, coverage, [])
        self.box = box
        self.ctx.doc.notify_pixels(layer, src)
        return True

    def _restore(self) -> None:
        f = self._float
        if f is None:
            return
        surf = f.layer.surface
        keys = set(surf.tile_keys()) | set(f.original.tile_keys())
        surf.swap_tiles({k: f.original.tile(k) for k in keys if surf.tile(k) is not f.original.tile(k)})
        self.ctx.doc.notify_pixels(f.layer, f.source.union(self.box.bounds() if self.box else f.source))

    def _end(self) -> None:
        self._float = None
        self.box = None
        self._drag = None
        self._idle = None
        self._notify()

    # -- pointer -----------------------------------------------------------------------
    def hover(self, x: float, y: float) -> str | None:
        """What a press at (x, y) would grab (for the cursor shape); None: nothing."""
        if self._job is not None:
            return None
        box = self.current_box()
        return hit_test(box, x, y, self.pixel_size) if box is not None else None

    def press(self, ev: PointerEvent) -> None:
        if self._job is not None:
            self.ctx.status("Applying the transform…")
            return
        box = self.current_box()
        if box is None:
            self.ctx.status(self.why_not())
            return
        kind = hit_test(box, ev.x, ev.y, self.pixel_size)
        if not self.begin():
            return
        assert self.box is not None
        self._drag = (kind, self.box, (ev.x, ev.y))

    def move(self, ev: PointerEvent) -> None:
        if self._drag is None:
            return
        kind, box0, start = self._drag
        shift, alt = "shift" in ev.modifiers, "alt" in ev.modifiers
        if kind == MOVE:
            box = drag_move(box0, start, ev.x, ev.y, constrain=shift)
        elif kind == ROTATE:
            box = drag_rotate(box0, start, ev.x, ev.y, snap=shift)
        else:
            box = drag_scale(box0, kind, ev.x, ev.y, keep_aspect=shift, from_centre=alt)
        if box != self.box:
            self.box = box
            self._notify()

    def release(self, ev: PointerEvent) -> None:
        if self._drag is None:
            return
        self.move(ev)
        box0 = self._drag[1]
        self._drag = None
        if self._float is not None and self.box != box0:
            self._float.history.append(box0)
        self._notify()

    # -- numeric entry, steps, apply, cancel -------------------------------------------
    def set_values(self, **values: float | None) -> bool:
        """Numeric entry: x, y (left/top of the unrotated box), width, height (px), angle (°)."""
        if self._job is not None or not self.begin():
            return False
        assert self.box is not None and self._float is not None
        box = self.box.with_values(**values)
        if box != self.box:
            self._float.history.append(self.box)
            self.box = box
        self._notify()
        return True

    def step_back(self) -> bool:
        """Undo the last drag or numeric change of the pending transform; with none left,
        cancel it. False when nothing is pending."""
        if self._float is None or self._job is not None:
            return False
        if self._float.history:
            self.box = self._float.history.pop()
            self._drag = None
            self._notify()
        else:
            self.cancel()
        return True

    def begin_commit(self) -> TransformJob | None:
        """Start applying: returns the resample job to run (anywhere), or None when there
        is nothing to resample (nothing pending, or the box was not changed: the piece
        goes straight back, no undo step)."""
        f = self._float
        if f is None or self._job is not None or self.box is None:
            return None
        self._drag = None
        if self.box.is_identity:
            self._restore()
            self._end()
            return None
        self._job = TransformJob(f.original, f.layer.surface.snapshot(), self.box, f.coverage)
        self._notify()
        return self._job

    def finish_commit(self, job: TransformJob, result: TransformResult) -> None:
        """Write the resampled piece over the layer and record ONE undo step."""
        f = self._float
        if job is not self._job or job.abandoned or f is None:
            return
        self._job = None
        doc = self.ctx.doc
        surf = f.layer.surface
        rect = result.rect
        surf.swap_tiles(result.tiles)
        touched = f.source.union(rect)
        keys = set(surf.tile_keys()) | set(f.original.tile_keys())
        before = {k: f.original.tile(k) for k in keys if surf.tile(k) is not f.original.tile(k)}
        text = "Transform selection" if f.coverage is not None else f"Transform “{f.layer.name}”"
        commands: list[Command] = []
        if before:
            commands.append(TilesCommand(doc, f.layer, before, touched, text))
        if result.selection is not None:
            srect, values = result.selection
            sel = TiledSurface(1)
            part = srect.intersect(doc.rect)
            if not part.is_empty():
                sel.write(part.x, part.y, values[part.y - srect.y:part.y1 - srect.y,
                                                 part.x - srect.x:part.x1 - srect.x])
                sel.prune()
            cmd = SelectionCommand(doc, None if sel.is_blank else sel, text)
            cmd.redo()
            commands.append(cmd)
        if commands:
            doc.history.push(commands[0] if len(commands) == 1 else MacroCommand(text, commands))
        doc.notify_pixels(f.layer, touched)
        self._end()

    def commit(self) -> bool:
        """Apply now, on this thread. True if something was applied."""
        job = self.begin_commit()
        if job is None:
            return False
        self.finish_commit(job, job.run())
        return True

    def cancel(self) -> None:
        """Put everything back as it was before the lift (a running resample is dropped)."""
        if self._job is not None:
            self._job.abandoned = True
            self._job = None
        if self._float is not None:
            self._restore()
            self._end()
        self._drag = None

    # -- drawing -----------------------------------------------------------------------
    def preview(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(low-resolution straight RGBA piece, 2x3 matrix from its pixel coordinates to
        the document, layer opacity) while a piece floats; None otherwise."""
        f = self._float
        if f is None or self.box is None or not f.layer.visible:
            return None
        ph, pw = f.preview.shape[:2]
        m = self.box.matrix()
        scale = np.diag([f.source.w / pw, f.source.h / ph])
        a = m[:, :2] @ scale
        t = m[:, :2] @ np.array([f.source.x, f.source.y], np.float64) + m[:, 2]
        return f.preview, np.hstack([a, t[:, None]]), f.layer.opacity

    def overlay(self) -> list[tuple[str, object]]:
        box = self.current_box()
        if box is None:
            return []
        top, knob = box.rotate_knob(self.pixel_size)
        return [("quad", box.corners()),
                ("handles", [box.handle_point(n) for n in HANDLES]),
                ("rotate", (top, knob))]


def _preview_from(surface: TiledSurface, source: Rect, coverage: np.ndarray | None = None) -> np.ndarray:
    """The piece at preview resolution (at most PREVIEW_MAX_SIDE a side): every n-th
    pixel, so a big layer is never read whole on the GUI thread. Only a preview: the
    commit resamples the full-resolution pixels."""
    step = max(1, math.ceil(max(source.w, source.h) / PREVIEW_MAX_SIDE))
    sampled = surface.sample(source, step) if step > 1 else surface.read(source)
    if sampled is None:
        return np.zeros((1, 1, 4), np.uint8)
    if coverage is not None:
        cov = coverage[::step, ::step].astype(np.uint16)
        sampled[..., 3] = ((sampled[..., 3].astype(np.uint16) * cov + 127) // 255).astype(np.uint8)
    return sampled


__all__ = ["HANDLES", "MOVE", "ROTATE", "TransformBox", "TransformJob",
           "TransformResult", "TransformTool", "drag_move", "drag_rotate", "drag_scale",
           "hit_test", "normalise_angle", "over", "transform_coverage", "transform_rgba"]
