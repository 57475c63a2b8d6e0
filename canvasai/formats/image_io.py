"""Reading raster images as untrusted input: THE image reader of the app and the CLI.

Every decode goes through `decode_image` (or `decode_image_alpha`, which also
says whether the file has transparency). It:
- accepts only the formats in `ALLOWED_FORMATS` (PNG, JPEG, WebP, TIFF, BMP and
  the first frame of a GIF), judged from the bytes Pillow detects, never from
  the file name: an EPS or PDF renamed ``.png`` is refused, so no Ghostscript;
- reads the header only, and refuses the file *before* decoding any pixel when
  its claimed size is over `MAX_IMAGE_SIDE` per side or `MAX_IMAGE_PIXELS` in
  all, when the pixels would not fit the memory budget (see formats/budget.py),
  or when the file is far too small to hold that many pixels (a 632-byte JPEG
  claiming 16000 x 16000 pixels is a damaged or hostile file, not a picture);
- decodes with Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` forced off, so a
  truncated file is an error, never a grey-padded picture;
- applies the EXIF orientation (any format that carries it);
- keeps transparency: alpha channels, palette and tRNS transparency, also for
  16-bit grey PNGs (mode I;16 / I with a tRNS value) and LA;
- turns every decoder failure into a `FileFormatError` whose message names the
  file and says what is wrong.

Pillow keeps its own, process-wide bomb limit (`Image.MAX_IMAGE_PIXELS`); it
is raised here to our cap so that legitimate large canvases open, while our
explicit check keeps the bound.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from canvasai.core.errors import FileFormatError
from canvasai.document.document import MAX_SIDE, Document
from canvasai.document.layer import Layer
from canvasai.document.tiles import TiledSurface
from canvasai.formats.budget import MemoryBudget
from canvasai.formats.png_codec import PNG_HEADER_BYTES, read_png_header

MAX_IMAGE_SIDE = MAX_SIDE
MAX_IMAGE_PIXELS = 16384 * 16384  # 1 GiB of RGBA once decoded
MAX_IMAGE_FILE_BYTES = 1 << 30  # what we agree to read into memory for one image

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF"})
FORMAT_NAMES = "PNG, JPEG, WebP, TIFF, BMP or GIF"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
DECODED_BYTES_PER_PIXEL = 4  # straight RGBA uint8
_ORIENTATION = 0x0112  # EXIF tag

# The most pixels one byte of a *complete* file can describe, per format, where
# the coding has a hard limit (checked before decoding; see `check_plausible_size`).
JPEG_HUFFMAN_BITS_PER_BLOCK = 1  # every 8x8 block's DC value takes >= 1 Huffman-coded bit
JPEG_ARITHMETIC_BLOCKS_PER_BYTE = 512  # arithmetic coding has no hard limit: a generous cap
DEFLATE_MAX_RATIO = 1032
GIF_PIXELS_PER_BYTE = 4096  # a 12-bit LZW code expands to at most 4096 pixels
_SLACK_BYTES = 64

if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
    # Pillow errors at twice this value; our own check in decode_image is stricter.
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

_truncated_lock = threading.Lock()
_truncated_users = 0
_truncated_saved = False


@contextlib.contextmanager
def strict_decoding() -> Iterator[None]:
    """Force `ImageFile.LOAD_TRUNCATED_IMAGES` off while we decode (restored afterwards).

    The flag is process-wide and some libraries switch it on; with it on, Pillow
    pads a truncated file with grey and reports success.
    """
    global _truncated_users, _truncated_saved
    with _truncated_lock:
        if _truncated_users == 0:
            _truncated_saved = ImageFile.LOAD_TRUNCATED_IMAGES
        _truncated_users += 1
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _truncated_lock:
            _truncated_users -= 1
            if _truncated_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _truncated_saved


def _describe(name: str) -> str:
    return f"“{name}”" if name else "The image"


def too_large_message(
    name: str = "",
    width: int | None = None,
    height: int | None = None,
    pixels: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> str:
    """The one message for an image over the size limits, whichever check found it: the
    size it claims (when known) and the real limits, in plain words."""
    what = _describe(name)
    if width is not None and height is not None:
        size = f"is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} megapixels)"
    elif pixels is not None:
        size = f"is {pixels / 1e6:,.0f} megapixels"
    else:
        size = "is larger"
    return (
        f"{what} {size}, more than CanvasAI opens: at most {MAX_IMAGE_SIDE:,} pixels on a "
        f"side and {max_pixels / 1e6:,.0f} megapixels in all. If the picture is real, scale "
        "it down in another program first; otherwise the file is damaged or a decompression "
        "bomb."
    )


def check_image_size(
    width: int, height: int, name: str = "", max_pixels: int = MAX_IMAGE_PIXELS
) -> None:
    """Raise FileFormatError for a claimed size that is empty, negative or too large."""
    what = _describe(name)
    if width <= 0 or height <= 0:
        raise FileFormatError(f"{what} claims an empty size ({width} x {height} pixels).")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > max_pixels:
        raise FileFormatError(too_large_message(name, width, height, max_pixels=max_pixels))


def _bomb_message(exc: BaseException, data: bytes, name: str, max_pixels: int) -> str:
    """Pillow refused a header before we saw its size: say the same as `check_image_size`
    (the size from a PNG header, else the pixel count Pillow reports), not Pillow's text."""
    with contextlib.suppress(FileFormatError, ValueError, struct.error):
        if data.startswith(b"\x89PNG"):
            header = read_png_header(data[:PNG_HEADER_BYTES], name)
            return too_large_message(name, header.width, header.height, max_pixels=max_pixels)
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    return too_large_message(name, pixels=pixels, max_pixels=max_pixels)


def _jpeg_frame_marker(data: bytes) -> int | None:
    """The SOFn marker of a JPEG (walking the segments before the first scan), or None."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return None


def check_plausible_size(fmt: str, width: int, height: int, data: bytes, name: str = "") -> None:
    """Refuse a file too small to hold the pixels it claims (before decoding them).

    Only where the format's coding has a hard limit: a complete JPEG spends at
    least one bit per 8x8 block (Huffman) and deflate (PNG) at most expands
    1032-fold, LZW (GIF) 4096 pixels per code. A file below that was cut short
    or forged; decoders fill the missing part with grey and report success.
    """
    nbytes = len(data) + _SLACK_BYTES
    if fmt in ("JPEG", "MPO"):
        blocks = -(-width // 8) * -(-height // 8)
        marker = _jpeg_frame_marker(data)
        arithmetic = marker is not None and marker >= 0xC9
        need = (
            blocks // JPEG_ARITHMETIC_BLOCKS_PER_BYTE
            if arithmetic
            else blocks * JPEG_HUFFMAN_BITS_PER_BLOCK // 8
        )
    elif fmt == "PNG":
        try:
            header = read_png_header(data[:PNG_HEADER_BYTES], name)
        except FileFormatError:
            return  # Pillow decides; a bad header fails there
        row = -(-width * header.bit_depth * header.channels // 8) + 1
        need = height * row // DEFLATE_MAX_RATIO
    elif fmt == "GIF":
        need = width * height // GIF_PIXELS_PER_BYTE
    else:
        return
    if need > nbytes:
        raise FileFormatError(
            f"{_describe(name)} claims to be {width} x {height} pixels but is only "
            f"{len(data):,} bytes, too small to hold them: it is truncated or corrupt."
        )


def read_file_limited(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """Read a whole file, refusing one larger than `limit` bytes (checked before and while reading)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise FileFormatError(
                f"“{p.name}” is {size / 2**20:.0f} MiB, larger than the {limit / 2**20:.0f} MiB "
                f"CanvasAI accepts for a {what}."
            )
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError as exc:
        raise FileFormatError(f"“{p}” does not exist.") from exc
    except IsADirectoryError as exc:
        raise FileFormatError(f"“{p}” is a folder, not a {what}.") from exc
    except PermissionError as exc:
        raise FileFormatError(f"CanvasAI may not read “{p}” (permission denied).") from exc
    except OSError as exc:
        raise FileFormatError(f"“{p}” could not be read: {exc.strerror or exc}.") from exc
    if len(data) > limit:
        raise FileFormatError(
            f"“{p.name}” grew past the {limit / 2**20:.0f} MiB limit while reading."
        )
    return data


_DEEP_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def has_transparency(img: Image.Image) -> bool:
    """Whether a decoded image carries alpha (channel, palette or tRNS transparency)."""
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _to_rgba_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> straight uint8 RGBA, keeping 16-bit data's high byte and tRNS."""
    mode = img.mode
    if mode in _DEEP_GREY:
        a = np.asarray(img)
        if mode == "I" and a.max(initial=0) <= 255:
            g = a.astype(np.uint8)
        elif mode == "I":
            g = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        else:
            g = (a.astype(np.uint16) >> 8).astype(np.uint8)
        out = np.empty(g.shape + (4,), np.uint8)
        out[..., :3] = g[..., None]
        trns = img.info.get("transparency")
        if isinstance(trns, int) and not isinstance(trns, bool):
            out[..., 3] = np.where(a == trns, 0, 255).astype(np.uint8)
        else:
            out[..., 3] = 255
        return out
    if mode == "F":
        a = np.asarray(img, np.float32)
        g = np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.dstack([g, g, g, np.full_like(g, 255)])
    if mode in ("RGBa", "La"):
        img = img.convert(mode.replace("a", "A"))
    if img.mode != "RGBA":
        img = img.convert("RGBA")  # honours palette and L/RGB tRNS transparency
    return np.array(img, dtype=np.uint8)


def _decoded_cost(width: int, height: int) -> int:
    return width * height * DECODED_BYTES_PER_PIXEL


def decode_image_alpha(
    data: bytes,
    name: str = "",
    max_pixels: int = MAX_IMAGE_PIXELS,
    formats: frozenset[str] = ALLOWED_FORMATS,
    budget: MemoryBudget | None = None,
) -> tuple[np.ndarray, bool]:
    """Decode image bytes into ((h, w, 4) straight uint8 RGBA, whether the file has alpha).

    Raises FileFormatError for anything not a complete image of an allowed
    format within the caps; nothing is decoded before those checks pass.
    `budget`, when given, is charged for the decoded pixels (else a fresh
    budget for this one image is used).
    """
    what = _describe(name)
    if not data:
        raise FileFormatError(f"{what} is empty (0 bytes).")
    allowed = sorted(formats | ({"JPEG"} if "MPO" in formats else set()))
    names = FORMAT_NAMES if formats == ALLOWED_FORMATS else ", ".join(sorted(formats))
    with strict_decoding():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # metadata noise in broken files
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data), formats=allowed)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise FileFormatError(_bomb_message(exc, data, name, max_pixels)) from exc
        except UnidentifiedImageError as exc:
            raise FileFormatError(
                f"{what} is not an image CanvasAI can read ({names} expected)."
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise FileFormatError(f"{what} could not be read: {exc}.") from exc
        try:
            with img, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Truncated File Read" etc.: we raise
                fmt = img.format or ""
                if fmt not in formats and not (fmt == "MPO" and "JPEG" in formats):
                    raise FileFormatError(
                        f"{what} is a {fmt or 'unknown'} file, which CanvasAI does not open "
                        f"({names} expected)."
                    )
                w, h = img.size
                check_image_size(w, h, name, max_pixels)
                check_plausible_size(fmt, w, h, data, name)
                cost = _decoded_cost(w, h)
                (budget or MemoryBudget.for_file(name or "image")).charge(f"{w} x {h} pixels", cost)
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # first frame only (GIF, multi-page TIFF, animated WebP)
                img.load()
                alpha = has_transparency(img)
                # exif_transpose copies the whole image even when there is nothing to do.
                if img.getexif().get(_ORIENTATION, 1) in range(2, 9):
                    transposed = ImageOps.exif_transpose(img)
                    if transposed is not None:
                        return _to_rgba_array(transposed), alpha
                return _to_rgba_array(img), alpha
        except FileFormatError:
            raise
        except MemoryError as exc:
            raise FileFormatError(
                f"{what} is too large to decode in the memory available."
            ) from exc
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            IndexError,
            TypeError,
            KeyError,
            ZeroDivisionError,
            struct.error,
        ) as exc:
            msg = str(exc) or type(exc).__name__
            raise FileFormatError(
                f"{what} is truncated or corrupt and could not be decoded ({msg})."
            ) from exc


def decode_image(
    data: bytes,
    name: str = "",
    max_pixels: int = MAX_IMAGE_PIXELS,
    formats: frozenset[str] = ALLOWED_FORMATS,
    budget: MemoryBudget | None = None,
) -> np.ndarray:
    """Decode image bytes into an (h, w, 4) straight uint8 RGBA array, or raise FileFormatError."""
    return decode_image_alpha(data, name, max_pixels, formats, budget)[0]


def peek_image_size(
    data: bytes, name: str = "", formats: frozenset[str] = ALLOWED_FORMATS
) -> tuple[int, int]:
    """The (width, height) an image's header claims, without decoding pixels."""
    what = _describe(name)
    try:
        with strict_decoding(), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(formats)) as img:
                return img.size
    except Image.DecompressionBombError as exc:
        raise FileFormatError(_bomb_message(exc, data, name, MAX_IMAGE_PIXELS)) from exc
    except UnidentifiedImageError as exc:
        raise FileFormatError(f"{what} is not an image CanvasAI can read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise FileFormatError(f"{what} could not be read: {exc}.") from exc


def read_image_alpha(
    path: str | os.PathLike[str], budget: MemoryBudget | None = None
) -> tuple[np.ndarray, bool]:
    """Read an image file: (straight uint8 RGBA, whether it has transparency)."""
    data = read_file_limited(path, MAX_IMAGE_FILE_BYTES, "image")
    return decode_image_alpha(data, Path(path).name, budget=budget)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file into straight uint8 RGBA, with all the checks of `decode_image`."""
    return read_image_alpha(path)[0]


def surface_from_array(pixels: np.ndarray, x: int = 0, y: int = 0) -> TiledSurface:
    """A new RGBA surface holding `pixels` at (x, y); fully transparent tiles are not allocated."""
    surface = TiledSurface(4)
    surface.write(x, y, pixels)
    surface.prune()
    return surface


def image_to_layer(pixels: np.ndarray, name: str, x: int = 0, y: int = 0) -> Layer:
    """A layer holding straight RGBA `pixels` with their top-left at (x, y)."""
    return Layer(name=name or "Image", surface=surface_from_array(pixels, x, y))


def document_from_layers(
    width: int, height: int, layers: list[Layer], active_index: int | None = None
) -> Document:
    """A Document with exactly `layers` (bottom to top) and an empty undo history."""
    doc = Document(width, height, background=None)
    if layers:
        doc.layers = list(layers)
    doc.active_index = (
        len(doc.layers) - 1
        if active_index is None
        else max(0, min(active_index, len(doc.layers) - 1))
    )
    doc.history.clear()
    return doc


def open_image_document(path: str | os.PathLike[str]) -> Document:
    """Open a PNG/JPEG/WebP/TIFF/BMP/GIF file as a one-layer document named after the file."""
    pixels = read_image(path)
    h, w = pixels.shape[:2]
    layer = image_to_layer(pixels, Path(path).stem)
    return document_from_layers(w, h, [layer], 0)
