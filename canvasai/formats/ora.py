"""OpenRaster (.ora) project files: writing, and reading as untrusted input.

Layout written (OpenRaster 0.0.5):

    mimetype                    "image/openraster", first member, stored
    stack.xml                   <image w h><stack><layer .../>...</stack></image>, top layer first
    data/layerNNN.png           one PNG per layer, cropped to its painted bounds
    mergedimage.png             the flattened image, full size
    Thumbnails/thumbnail.png    the flattened image, at most 256 px per side
    canvasai/document.json      CanvasAI extras (other programs ignore the folder)
    canvasai/mask.png, canvasai/selection.png, canvasai/blobs/*

Layers whose unpainted area is not transparent (a white Background is a fill
value, no tiles) are written full size so other programs see the same image.

Reading never extracts to disk: the archive is read into memory and only the
members that stack.xml and the extras refer to are inflated, each through
`archive.ArchiveReader`, which checks names, duplicates, per-member and total
sizes against the zip directory first and again while inflating. stack.xml is
parsed with defusedxml (DTDs, entities, external references refused) and the
attributes CanvasAI reads are length-capped (layer names are cut to
`OraLimits.max_name_chars`). Before any pixel is decoded, every decode the file
asks for (each layer per occurrence, mask, selection, the extras' images,
arrays and blobs) is charged, from PNG headers alone, to one memory budget
(formats/budget.py); over budget, the file is refused and nothing is decoded. Layers are then decoded on a worker
thread, straight into arrays, one ahead of the loading thread, which turns each
into tiles a tile row at a time (fully transparent tiles are never allocated).
Unknown elements and attributes are
ignored; nested <stack> groups are flattened (a group's visibility and opacity
are folded into its layers; its own blend mode is not applied).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import struct
import threading
import time
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
from PIL import Image

from canvasai.core.errors import FileFormatError, InvalidDocumentError
from canvasai.core.geometry import Rect
from canvasai.document.blend import BlendMode
from canvasai.document.compositing import composite_layers
from canvasai.document.document import MAX_SIDE, Document, validate_size
from canvasai.document.layer import Layer, LayerRole, RoleError, role_from_dict, role_to_dict
from canvasai.document.tiles import TiledSurface
from canvasai.formats.archive import ArchiveLimits, ArchiveReader
from canvasai.formats.atomic import atomic_writer, remove_stale_temporaries
from canvasai.formats.budget import MemoryBudget
from canvasai.formats.image_io import (
    DECODED_BYTES_PER_PIXEL,
    MAX_IMAGE_PIXELS,
    decode_image,
    document_from_layers,
    read_file_limited,
    strict_decoding,
)
from canvasai.formats.ora_extras import (
    EXTRAS_DIR,
    Packer,
    array_nbytes,
    iter_references,
    unpack,
)
from canvasai.formats.png_codec import (
    PNG_HEADER_BYTES,
    PngHeader,
    default_workers,
    encode_png,
    read_png_header,
)

log = logging.getLogger(__name__)

MIMETYPE = b"image/openraster"
EXTRAS_JSON = "canvasai/document.json"
EXTRAS_FORMAT = "canvasai-ora-extras"
EXTRAS_VERSION = 1
THUMBNAIL_SIDE = 256
MYPAINT_NS = "http://mypaint.org/ns/openraster"
# zlib level for layer PNGs: 1 is ~3-4x faster than Pillow's default 6 and
# only ~10-20% larger on painted content (see benchmarks/files.py).
DEFAULT_COMPRESS_LEVEL = 1

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class OraLimits:
    """Caps applied while reading. Defaults fit any real document CanvasAI can hold."""

    max_file_bytes: int = 4 << 30
    max_members: int = 20_000
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 6 << 30
    max_xml_bytes: int = 16 << 20
    max_json_bytes: int = 256 << 20
    max_layers: int = 2_000
    max_layer_pixels: int = MAX_IMAGE_PIXELS
    max_total_pixels: int = 1 << 32
    # Bytes everything the file decodes may take in all (layers per occurrence,
    # masks, the extras' images, arrays and blobs, the parsed XML and JSON, the
    # file itself). None: a fraction of the memory available (formats/budget.py).
    memory_budget: int | None = None
    max_name_chars: int = 1000  # longer layer names are cut to this many characters
    max_attr_chars: int = 256  # any other attribute CanvasAI reads: longer is refused

    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(self.max_members, self.max_member_bytes, self.max_total_bytes)


DEFAULT_LIMITS = OraLimits()


# -- writing ---------------------------------------------------------------------------
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold (control codes, lone surrogates)."""
    return _XML_INVALID.sub("", text)


def _fmt_float(v: float) -> str:
    return format(round(float(v), 6), "g")


def _layer_rect(layer: Layer, doc_rect: Rect) -> Rect:
    if layer.surface.fill[-1] != 0:
        return doc_rect
    return layer.surface.bounds().intersect(doc_rect)


def _zinfo(name: str, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _surface_member(
    surface: TiledSurface | None, doc_rect: Rect, name: str, compress_level: int
) -> tuple[dict[str, Any] | None, bytes | None]:
    if surface is None:
        return None, None
    rect = doc_rect if surface.fill[-1] else surface.bounds().intersect(doc_rect)
    if rect.is_empty():
        return {"src": None, "x": 0, "y": 0}, None
    pixels = surface.read(rect)[:, :, 0]
    return {"src": name, "x": rect.x, "y": rect.y}, encode_png(pixels, compress_level)


def flatten_parallel(
    layers: list[Layer], rect: Rect, workers: int | None = None, band: int = 512
) -> np.ndarray:
    """`composite_layers` over horizontal bands on worker threads (numpy releases the GIL)."""
    n = workers if workers is not None else default_workers()
    if n <= 1 or rect.h <= band:
        return composite_layers(layers, rect)
    out = np.empty((rect.h, rect.w, 4), np.uint8)

    def run(y: int) -> None:
        part = Rect.from_bounds(rect.x, y, rect.x1, min(rect.y1, y + band))
        out[part.y - rect.y : part.y1 - rect.y] = composite_layers(layers, part)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(run, range(rect.y, rect.y1, band)))
    return out


def write_ora(
    doc: Document,
    fh: BinaryIO,
    progress: Progress | None = None,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
) -> None:
    """Write `doc` as OpenRaster into a binary file object (not necessarily seekable)."""
    layers = list(doc.layers)
    total = len(layers) + 3
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    doc_rect = doc.rect
    packer = Packer(compress_level=compress_level)
    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        zf.writestr(_zinfo("mimetype", compress=False), MIMETYPE)
        image = ET.Element(
            "image",
            {
                "version": "0.0.5",
                "w": str(doc.width),
                "h": str(doc.height),
                "xres": "72",
                "yres": "72",
                # MyPaint 2 composites in linear light unless told the file is sRGB-blended
                # (eotf 1.0, its "1.x compatibility mode"), which is what CanvasAI, Krita
                # and GIMP do. Other readers ignore the foreign namespace.
                "xmlns:mypaint": MYPAINT_NS,
                "mypaint:eotf": "1.0",
            },
        )
        stack = ET.SubElement(image, "stack")
        extras_layers = []
        entries = []
        for i, layer in enumerate(layers):
            src = f"data/layer{i:03d}.png"
            rect = _layer_rect(layer, doc_rect)
            if rect.is_empty():
                rect = Rect(0, 0, 1, 1)
                pixels = np.zeros((1, 1, 4), np.uint8)
            else:
                pixels = layer.surface.read(rect)
            zf.writestr(_zinfo(src, compress=False), encode_png(pixels, compress_level))
            del pixels
            name = xml_safe(layer.name)
            attrs = {
                "name": name,
                "src": src,
                "x": str(rect.x),
                "y": str(rect.y),
                "opacity": _fmt_float(layer.opacity),
                "visibility": "visible" if layer.visible else "hidden",
                "composite-op": BlendMode(layer.blend_mode).value,
            }
            if layer.locked:
                attrs["edit-locked"] = "true"
            if i == doc.active_index:
                attrs["selected"] = "true"
            entries.append(attrs)
            extras_layers.append(
                {
                    "src": src,
                    "name": name,
                    "locked": layer.locked,
                    "is_sketch": layer.is_sketch,  # what older versions read
                    "role": role_to_dict(layer.role),
                    "generation": packer.pack(layer.generation) if layer.generation else None,
                }
            )
            step()
        for attrs in reversed(entries):  # stack.xml lists the top layer first
            ET.SubElement(stack, "layer", attrs)
        zf.writestr(
            _zinfo("stack.xml", compress=True),
            ET.tostring(image, encoding="UTF-8", xml_declaration=True),
        )

        merged = flatten_parallel(layers, doc_rect)
        zf.writestr(_zinfo("mergedimage.png", compress=False), encode_png(merged, compress_level))
        step()
        thumb = Image.fromarray(merged, "RGBA")
        del merged
        thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        thumb.save(buf, "PNG")
        zf.writestr(_zinfo("Thumbnails/thumbnail.png", compress=False), buf.getvalue())
        step()

        mask_ref, mask_png = _surface_member(
            doc.mask, doc_rect, "canvasai/mask.png", compress_level
        )
        sel_ref, sel_png = _surface_member(
            doc.selection, doc_rect, "canvasai/selection.png", compress_level
        )
        for ref, png in ((mask_ref, mask_png), (sel_ref, sel_png)):
            if ref is not None and png is not None:
                zf.writestr(_zinfo(ref["src"], compress=False), png)
        extras = {
            "format": EXTRAS_FORMAT,
            "version": EXTRAS_VERSION,
            "active_index": doc.active_index,
            "layers": extras_layers,
            "mask": mask_ref,
            "selection": sel_ref,
            "metadata": packer.pack(doc.metadata),
        }
        for name, data in packer.members.items():
            zf.writestr(_zinfo(name, compress=not name.endswith(".png")), data)
        zf.writestr(
            _zinfo(EXTRAS_JSON, compress=True),
            json.dumps(extras, indent=1).encode("ascii"),
        )
        step()


def save_ora(
    doc: Document,
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
) -> None:
    """Save atomically: `path` is replaced only once the new file is complete and fsynced.

    A symlink is written through to its target; a read-only file is refused
    (`atomic.ReadOnlyFileError`); temporaries left by an earlier killed save of
    the same file are removed first.
    """
    try:
        with atomic_writer(path) as fh:
            write_ora(doc, fh, progress, compress_level)
    except FileFormatError:
        raise  # read-only target and the like: already a sentence
    except OSError as exc:
        raise FileFormatError(
            f"Could not save “{Path(path).name}”: {exc.strerror or exc}. The previous file is unchanged."
        ) from exc


def ora_bytes(doc: Document, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    buf = io.BytesIO()
    write_ora(doc, buf, compress_level=compress_level)
    return buf.getvalue()


# -- reading ---------------------------------------------------------------------------
# Parsed XML and JSON take several times their size as Python objects.
PARSE_OVERHEAD = 8
_EXIF_ORIENTATION = 0x0112
# Layers decoded ahead of the one being turned into tiles while opening. One keeps the
# peak memory of a one-at-a-time reader; two decodes faster on an idle multi-core machine
# but holds one more decoded layer (measured with benchmarks/files.py).
DECODE_WINDOW = 1

# Attributes of stack.xml that CanvasAI reads; each is capped (see OraLimits).
_READ_ATTRS = (
    "w",
    "h",
    "x",
    "y",
    "opacity",
    "visibility",
    "composite-op",
    "src",
    "edit-locked",
    "selected",
    "name",
)


def parse_xml(data: bytes, label: str, what: str = "stack.xml") -> ET.Element:
    """Parse untrusted XML with defusedxml: DTDs, entities and external references refused,
    whatever the encoding (a UTF-16 document hides "<!DOCTYPE" from a byte search)."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise FileFormatError(
            f"“{label}”: {what} declares a DTD, entities or external references, which are "
            f"refused ({type(exc).__name__})."
        ) from exc
    except ET.ParseError as exc:
        raise FileFormatError(f"“{label}”: {what} is not well-formed XML ({exc}).") from exc
    except (ValueError, LookupError, UnicodeError) as exc:
        raise FileFormatError(f"“{label}”: {what} is not well-formed XML ({exc}).") from exc


def _check_xml(data: bytes, label: str) -> ET.Element:
    return parse_xml(data, label)


def _check_attributes(root: ET.Element, label: str, limits: OraLimits) -> None:
    """Refuse an over-long value in any attribute CanvasAI reads (names are cut instead)."""
    for el in root.iter():
        for key in _READ_ATTRS:
            value = el.get(key)
            if value is None or key == "name" or len(value) <= limits.max_attr_chars:
                continue
            raise FileFormatError(
                f"“{label}”: stack.xml has a {key} attribute of {len(value):,} characters "
                f"(at most {limits.max_attr_chars} are accepted); the file is damaged or hostile."
            )


@dataclass
class _LayerSpec:
    name: str
    src: str
    x: int
    y: int
    opacity: float
    visible: bool
    blend_mode: BlendMode
    locked: bool
    selected: bool


def _int_attr(
    el: ET.Element, key: str, label: str, default: int = 0, bound: int = 2 * MAX_SIDE
) -> int:
    raw = el.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = float(raw)
    except ValueError as exc:
        raise FileFormatError(f"“{label}”: {el.tag} has a non-numeric {key}={raw!r}.") from exc
    if not math.isfinite(v) or abs(v) > bound:
        raise FileFormatError(f"“{label}”: {el.tag} has an absurd {key}={raw!r}.")
    return int(round(v))


def _opacity_attr(el: ET.Element, label: str) -> float:
    raw = el.get("opacity")
    if raw is None or raw.strip() == "":
        return 1.0
    try:
        v = float(raw)
    except ValueError as exc:
        raise FileFormatError(f"“{label}”: a layer has a non-numeric opacity {raw!r}.") from exc
    if not math.isfinite(v):
        raise FileFormatError(f"“{label}”: a layer has an invalid opacity {raw!r}.")
    return min(1.0, max(0.0, v))


def _layer_name(el: ET.Element, number: int, max_chars: int = 1000) -> str:
    """The layer's name; one longer than `max_chars` characters is cut to that length."""
    name = el.get("name")
    if name is None:
        return f"Layer {number}"
    if len(name) > max_chars:
        log.warning("layer %d: a %d-character name was cut to %d", number, len(name), max_chars)
        return name[:max_chars]
    return name


def _parse_stack(
    el: ET.Element,
    label: str,
    out: list[_LayerSpec],
    ox: int,
    oy: int,
    opacity: float,
    visible: bool,
    limits: OraLimits,
    depth: int = 0,
) -> None:
    """Append the layers of a <stack> element, top first, flattening nested stacks."""
    if depth > 64:
        raise FileFormatError(f"“{label}”: layer groups are nested too deeply.")
    for child in el:
        if child.tag not in ("layer", "stack"):
            continue  # text, filter, and whatever a newer version adds
        cx = ox + _int_attr(child, "x", label)
        cy = oy + _int_attr(child, "y", label)
        c_opacity = opacity * _opacity_attr(child, label)
        c_visible = visible and child.get("visibility", "visible") != "hidden"
        if child.tag == "stack":
            _parse_stack(child, label, out, cx, cy, c_opacity, c_visible, limits, depth + 1)
            continue
        src = child.get("src")
        if not src:
            raise FileFormatError(f"“{label}”: a layer in stack.xml has no src.")
        if len(out) >= limits.max_layers:
            raise FileFormatError(f"“{label}” has more than {limits.max_layers} layers.")
        out.append(
            _LayerSpec(
                name=_layer_name(child, len(out) + 1, limits.max_name_chars),
                src=src,
                x=cx,
                y=cy,
                opacity=c_opacity,
                visible=c_visible,
                blend_mode=BlendMode.from_ora(child.get("composite-op")),
                locked=child.get("edit-locked", "false").lower() == "true",
                selected=child.get("selected", "false").lower() == "true",
            )
        )


def _surface_from_pixels(
    pixels: np.ndarray, x: int, y: int, doc_rect: Rect, allow_fill: bool = True
) -> TiledSurface:
    """Surface for a layer image at (x, y), clipped to the document. A uniform layer
    covering the whole document becomes a fill value (no tiles); otherwise the pixels go
    into tiles one tile row at a time, and tiles with nothing visible (alpha 0 all over;
    no alpha: all zero) are never allocated."""
    h, w = pixels.shape[:2]
    part = Rect(x, y, w, h).intersect(doc_rect)
    c = pixels.shape[2] if pixels.ndim == 3 else 1
    surface = TiledSurface(4 if c in (3, 4) else c)
    if part.is_empty():
        return surface
    crop = pixels[part.y - y : part.y1 - y, part.x - x : part.x1 - x]
    if allow_fill and part == doc_rect and crop.ndim == 3 and c in (3, 4) and (
        c == 3 or crop[..., -1].all()
    ):
        first = crop[0, 0]
        probes = crop[:: max(1, part.h // 7), :: max(1, part.w // 7)]
        if (probes == first).all() and (crop == first).all():
            fill = first.tolist() + ([255] if c == 3 else [])
            return TiledSurface(4, fill=fill)
    if crop.ndim == 2:
        crop = crop[:, :, None]
    ts = surface.tile_size
    ch = surface.channels
    kx0 = part.x // ts
    nk = -(-part.x1 // ts) - kx0
    x0 = part.x - kx0 * ts
    top = part.y
    while top < part.y1:
        ky = top // ts
        bottom = min(part.y1, (ky + 1) * ts)
        rows = crop[top - part.y : bottom - part.y]
        # which tiles of this tile row have a visible pixel (alpha, or coverage, > 0)
        alpha = np.zeros((bottom - top, nk * ts), np.uint8)
        alpha[:, x0 : x0 + part.w] = rows[..., -1] if c != 3 else 255
        visible = alpha.reshape(bottom - top, nk, ts).any(axis=(0, 2))
        y0 = top - ky * ts
        for k in np.flatnonzero(visible).tolist():
            tx0 = max(part.x, (kx0 + k) * ts)
            tx1 = min(part.x1, (kx0 + k + 1) * ts)
            src = rows[:, tx0 - part.x : tx1 - part.x]
            whole = y0 == 0 and bottom - top == ts and tx1 - tx0 == ts
            tile = np.empty((ts, ts, ch), np.uint8) if whole else np.zeros((ts, ts, ch), np.uint8)
            dst = tile[y0 : y0 + bottom - top, tx0 - (kx0 + k) * ts : tx1 - (kx0 + k) * ts]
            if c == 3:
                dst[..., :3] = src
                dst[..., 3] = 255
            else:
                dst[:] = src
            surface.set_tile((kx0 + k, ky), tile)
        top = bottom
    return surface


class _Loader:
    """Reads one archive: plans (and budgets) every decode first, then decodes."""

    def __init__(
        self,
        data: bytes,
        label: str,
        limits: OraLimits,
        progress: Progress | None,
        warnings: list[str] | None = None,
    ) -> None:
        self.label = label
        self.limits = limits
        self.progress = progress
        self.warnings = warnings if warnings is not None else []
        self.budget = MemoryBudget.for_file(label, limits.memory_budget)
        self.budget.charge("the file itself", len(data), decode=False)
        self.archive = ArchiveReader(data, label, limits.archive_limits())
        self.pixels_total = 0
        self.allowance: Counter[str] = Counter()  # decodes budgeted, per member
        self.headers: dict[str, PngHeader] = {}
        self._read_lock = threading.Lock()

    def warn(self, message: str) -> None:
        log.warning("%s: %s", self.label, message)
        self.warnings.append(message)

    # -- planning: nothing below decodes a pixel --------------------------------------
    def _header(self, member: str) -> PngHeader:
        header = self.headers.get(member)
        if header is None:
            head = self.archive.read_head(member, PNG_HEADER_BYTES)
            header = read_png_header(head, f"{self.label}: {member}")
            self.headers[member] = header
        return header

    def plan_png(self, member: str, what: str, layer: bool = False) -> None:
        """Charge one decode of `member` (a PNG) from its header; raises FileFormatError."""
        header = self._header(member)
        w, h = header.width, header.height
        if w <= 0 or h <= 0 or w * h > self.limits.max_layer_pixels:
            raise FileFormatError(
                f"“{self.label}”: {member!r} claims {w} x {h} pixels, too many (or none)."
            )
        if layer:
            self.pixels_total += w * h
            if self.pixels_total > self.limits.max_total_pixels:
                raise FileFormatError(
                    f"“{self.label}”: the layers hold more pixels in all than CanvasAI accepts."
                )
        self.budget.charge(f"{what} ({w} x {h} pixels)", w * h * DECODED_BYTES_PER_PIXEL)
        self.allowance[member] += 1

    def plan_optional_png(self, member: str, what: str) -> None:
        """Like `plan_png` for an optional extra: an unreadable header drops it with a
        warning (it is then never decoded); a budget overrun still refuses the file."""
        try:
            self._header(member)
        except FileFormatError as exc:
            self.warn(f"{what} {member[:200]!r} is unreadable and was left out: {exc}")
            return
        self.plan_png(member, what)

    def plan_value(self, value: Any, what: str) -> None:
        """Charge every image, array and blob a packed extras value will unpack to."""
        for ref in iter_references(value):
            if "$png" in ref:
                name = ref["$png"]
                if name.startswith(EXTRAS_DIR) and self.archive.has(name):
                    self.plan_optional_png(name, f"an image in {what}")
            elif "$array" in ref:
                try:
                    nbytes = array_nbytes(ref)
                except FileFormatError:
                    continue  # refused again, without allocating, when unpacked
                self.budget.charge(f"an array in {what}", nbytes)
            else:
                name = ref["$bytes"]
                if name.startswith(EXTRAS_DIR) and self.archive.has(name):
                    self.budget.charge(f"{name!r}", self.archive.size(name), decode=False)

    # -- decoding ---------------------------------------------------------------------
    def _take(self, member: str) -> None:
        """Use up one planned decode of `member` (refuse one that was not budgeted)."""
        if self.allowance[member] <= 0:
            raise FileFormatError(
                f"“{self.label}”: {member!r} was not counted against the memory budget."
            )
        self.allowance[member] -= 1

    def _read_planned(self, member: str) -> bytes:
        with self._read_lock:  # the archive's counters are not thread-safe
            data = self.archive.read(member)
        if read_png_header(data[:PNG_HEADER_BYTES], member) != self.headers[member]:
            raise FileFormatError(f"“{self.label}”: {member!r} changed while reading.")
        return data

    def _decode_data(self, data: bytes, member: str) -> np.ndarray:
        return decode_image(
            data,
            f"{self.label}: {member}",
            self.limits.max_layer_pixels,
            frozenset({"PNG"}),
            budget=MemoryBudget.already_charged(),
        )

    def decode(self, member: str) -> np.ndarray:
        """Decode a PNG member that `plan_png` budgeted (once per planned occurrence)."""
        self._take(member)
        return self._decode_data(self._read_planned(member), member)

    def decode_layer(self, spec: _LayerSpec) -> np.ndarray:
        """Read and decode one layer's PNG into an RGBA array (on the decode thread:
        Pillow's inflate and unfiltering release the GIL). An 8-bit RGBA PNG is decoded
        straight into the array (a Pillow image mapped onto its memory), with no
        intermediate image or copy; any other flavour goes through the one image reader."""
        data = self._read_planned(spec.src)
        name = f"{self.label}: {spec.src}"
        with strict_decoding(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
                    if img.mode == "RGBA":
                        w, h = img.size
                        pixels = np.empty((h, w, 4), np.uint8)
                        target = Image.frombuffer("RGBA", (w, h), pixels, "raw", "RGBA", 0, 1)
                        img.im = target.im  # load() decodes into an image of the right size
                        img.load()
                        if img.getexif().get(_EXIF_ORIENTATION, 1) in (0, 1):
                            return pixels if img.im is target.im else np.asarray(img)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
                    SyntaxError, ValueError, EOFError, struct.error) as exc:
                raise FileFormatError(f"“{name}” could not be read: {exc}.") from exc
        return self._decode_data(data, spec.src)

    def decode_layers(self, specs: list[_LayerSpec], doc_rect: Rect, total: int
                      ) -> list[TiledSurface]:
        """Every layer's surface, in stack order. `DECODE_WINDOW` threads decode the next
        layers' PNGs (Pillow releases the GIL) while this one turns the current layer into
        tiles. With a window of one, at most two layers' pixels exist at once outside the
        tiles: as many as the one-layer-at-a-time reader before, which held a decoded
        image and its array copy. The tiles are allocated on this thread, where memory a
        closed document freed can be reused."""
        for spec in specs:
            self._take(spec.src)
        window = DECODE_WINDOW
        out: list[TiledSurface] = []
        with ThreadPoolExecutor(window, thread_name_prefix="ora-decode") as pool:
            pending = deque(pool.submit(self.decode_layer, s) for s in specs[:window])
            try:
                for i, spec in enumerate(specs):
                    pixels = pending.popleft().result()
                    if i + window < len(specs):  # decode the next while this one becomes tiles
                        pending.append(pool.submit(self.decode_layer, specs[i + window]))
                    out.append(_surface_from_pixels(pixels, spec.x, spec.y, doc_rect))
                    del pixels
                    if self.progress is not None:
                        self.progress(i + 1, total)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
        return out

    def load(self) -> Document:
        a = self.archive
        if a.has("mimetype"):
            mt = a.read("mimetype", 4096).strip()
            if mt != MIMETYPE:
                raise FileFormatError(
                    f"“{self.label}” is not an OpenRaster file (its mimetype is {mt[:60]!r})."
                )
        if not a.has("stack.xml"):
            raise FileFormatError(
                f"“{self.label}” is not a valid OpenRaster file: stack.xml is missing."
            )
        xml = a.read("stack.xml", self.limits.max_xml_bytes)
        self.budget.charge("stack.xml", len(xml) * PARSE_OVERHEAD, decode=False)
        root = _check_xml(xml, self.label)
        del xml
        if root.tag != "image":
            raise FileFormatError(f"“{self.label}”: stack.xml does not describe an image.")
        _check_attributes(root, self.label, self.limits)
        try:
            w, h = validate_size(
                _int_attr(root, "w", self.label, -1, 1 << 40),
                _int_attr(root, "h", self.label, -1, 1 << 40),
            )
        except InvalidDocumentError as exc:
            raise FileFormatError(f"“{self.label}”: invalid image size. {exc}") from exc
        specs: list[_LayerSpec] = []
        top = root.find("stack")
        if top is not None:
            _parse_stack(top, self.label, specs, 0, 0, 1.0, True, self.limits)
        specs.reverse()  # bottom first, like Document.layers
        doc_rect = Rect(0, 0, w, h)
        extras = self._extras()
        extra_layers = extras.get("layers")
        by_src = (
            {e.get("src"): e for e in extra_layers if isinstance(e, dict)}
            if isinstance(extra_layers, list)
            else {}
        )
        # Our extras are trusted only for the layer they were written for.
        matched = [
            e if e is not None and e.get("name", s.name) == s.name else None
            for s, e in ((s, by_src.get(s.src)) for s in specs)
        ]
        mask_ref = extras.get("mask")
        sel_ref = extras.get("selection")
        meta_ref = extras.get("metadata")

        # 1. Plan: every decode is charged to the budget before any is done.
        for spec, extra in zip(specs, matched, strict=True):
            self.plan_png(spec.src, f"layer “{spec.name[:80]}”", layer=True)
            if extra is not None:
                self.plan_value(extra.get("generation"), f"layer “{spec.name[:80]}”")
        for ref, what in ((mask_ref, "the mask"), (sel_ref, "the selection")):
            if isinstance(ref, dict) and isinstance(ref.get("src"), str) and a.has(ref["src"]):
                self.plan_optional_png(ref["src"], what)
        self.plan_value(meta_ref, "the document metadata")

        # 2. Decode.
        layers: list[Layer] = []
        total = len(specs) + 1
        surfaces = self.decode_layers(specs, doc_rect, total)
        for spec, extra, surface in zip(specs, matched, surfaces, strict=True):
            layer = Layer(
                spec.name, surface, spec.opacity, spec.visible, spec.blend_mode, spec.locked
            )
            if extra is not None:
                layer.role = self._role(extra, spec.name)
                gen = self._unpack(extra.get("generation"), f"layer “{spec.name[:80]}”")
                layer.generation = gen if isinstance(gen, dict) else None
            layers.append(layer)
        del surfaces
        active = next((i for i, s in enumerate(specs) if s.selected), len(layers) - 1)
        if isinstance(extras.get("active_index"), int) and 0 <= extras["active_index"] < len(
            layers
        ):
            active = extras["active_index"]
        doc = document_from_layers(w, h, layers, active)
        mask = self._surface_extra(mask_ref, doc_rect, "the mask")
        if mask is not None:
            doc.mask = mask
        if isinstance(sel_ref, dict):
            doc.selection = self._surface_extra(sel_ref, doc_rect, "the selection") or TiledSurface(
                1
            )
        meta = self._unpack(meta_ref, "the document metadata")
        if isinstance(meta, dict):
            doc.metadata = meta
        doc.history.clear()
        if self.progress is not None:
            self.progress(total, total)
        return doc

    def _unpack(self, value: Any, what: str) -> Any:
        return unpack(
            value,
            self._read_extra_member,
            self.limits.max_layer_pixels,
            on_error=lambda msg: self.warn(f"{what}: {msg}; left out"),
            decode_png=self._decode_extra_png,
        )

    def _read_extra_member(self, name: str) -> bytes:
        if not name.startswith(EXTRAS_DIR):
            raise FileFormatError(f"{name[:200]!r} is not a CanvasAI member")
        return self.archive.read(name)

    def _decode_extra_png(self, name: str) -> np.ndarray:
        if not name.startswith(EXTRAS_DIR):
            raise FileFormatError(f"{name[:200]!r} is not a CanvasAI member")
        return self.decode(name)

    def _extras(self) -> dict[str, Any]:
        if not self.archive.has(EXTRAS_JSON):
            return {}
        try:
            raw = self.archive.read(EXTRAS_JSON, self.limits.max_json_bytes)
            self.budget.charge(EXTRAS_JSON, len(raw) * PARSE_OVERHEAD, decode=False)
            extras = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.warn(f"the CanvasAI extras are unreadable and were ignored: {exc}")
            return {}
        if not isinstance(extras, dict) or extras.get("format") != EXTRAS_FORMAT:
            return {}
        if not isinstance(extras.get("version"), int) or extras["version"] > EXTRAS_VERSION:
            log.info("%s: extras from a newer CanvasAI; reading what is understood", self.label)
        return extras

    def _role(self, extra: dict[str, Any], name: str) -> LayerRole:
        """The layer's role (control, reference, region); an older file's sketch flag is a
        scribble control layer. A role that cannot be read is left out with a warning."""
        raw = extra.get("role")
        if raw is None:
            return role_from_dict({"type": "control"}) if extra.get("is_sketch") is True else None
        try:
            return role_from_dict(raw)
        except RoleError as exc:
            self.warn(f"layer “{name[:80]}”: its role was left out ({exc})")
            return None

    def _surface_extra(self, ref: Any, doc_rect: Rect, what: str) -> TiledSurface | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("src"), str):
            return None
        src = ref["src"]
        if not self.archive.has(src):
            self.warn(f"{what} ({src[:200]!r}) is missing from the file; left out")
            return None
        if self.allowance[src] <= 0:
            return None  # its header was unreadable: already warned while planning
        try:
            x = int(ref.get("x", 0))
            y = int(ref.get("y", 0))
            rgba = self.decode(src)
        except (FileFormatError, TypeError, ValueError, OverflowError) as exc:
            self.warn(f"{what} ({src[:200]!r}) could not be read and was left out: {exc}")
            return None
        return _surface_from_pixels(rgba[:, :, :1], x, y, doc_rect, allow_fill=False)


def load_ora(
    source: str | os.PathLike[str] | bytes,
    limits: OraLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    warnings: list[str] | None = None,
) -> Document:
    """Read an OpenRaster file (path or bytes) into a new Document with an empty history.

    Raises FileFormatError with a message for the person on any problem; never
    writes anything to disk except removing this file's own stale temporary
    files left by a save that was killed (see formats/atomic.py). Optional
    CanvasAI extras that cannot be read are left out, each with a sentence
    appended to `warnings` (when given) and logged.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), "project"
    else:
        label = Path(source).name
        budget = MemoryBudget.for_file(label, limits.memory_budget)
        with contextlib.suppress(OSError):  # read_file_limited says what is wrong
            budget.charge("the file itself", Path(source).stat().st_size, decode=False)
        data = read_file_limited(source, limits.max_file_bytes, "project file")
        remove_stale_temporaries(source)
    try:
        return _Loader(data, label, limits, progress, warnings).load()
    except FileFormatError:
        raise
    except MemoryError as exc:
        raise FileFormatError(f"“{label}” is too large to open in the memory available.") from exc
    except RecursionError as exc:
        raise FileFormatError(f"“{label}” is nested too deeply to read.") from exc
