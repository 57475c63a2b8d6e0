"""Reading raster images (PNG, JPEG, WebP, TIFF, BMP) as untrusted input.

Every decode goes through `decode_image`, which:
- reads the header only, and refuses the file *before* decoding any pixel when
  its claimed size is over `MAX_IMAGE_SIDE` per side or `MAX_IMAGE_PIXELS` in
  all (decompression bombs: a 100000 x 100000 PNG is a few hundred bytes);
- accepts only the formats listed in `ALLOWED_FORMATS`, whatever the extension;
- turns every decoder failure (truncated data, a text file named .png, ...)
  into a `FileFormatError` whose message names the file and says what is wrong.

Pillow keeps its own, process-wide bomb limit (`Image.MAX_IMAGE_PIXELS`); it
is raised here to our cap so that legitimate large canvases open, while our
explicit check keeps the bound.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from canvasai.core.errors import FileFormatError
from canvasai.document.document import MAX_SIDE, Document
from canvasai.document.layer import Layer
from canvasai.document.tiles import TiledSurface

MAX_IMAGE_SIDE = MAX_SIDE
MAX_IMAGE_PIXELS = 16384 * 16384  # 1 GiB of RGBA once decoded
MAX_IMAGE_FILE_BYTES = 1 << 30  # what we agree to read into memory for one image

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "BMP"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
    # Pillow errors at twice this value; our own check in decode_image is stricter.
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _describe(name: str) -> str:
    return f"“{name}”" if name else "The image"


def check_image_size(
    width: int, height: int, name: str = "", max_pixels: int = MAX_IMAGE_PIXELS
) -> None:
    """Raise FileFormatError for a claimed size that is empty, negative or too large."""
    what = _describe(name)
    if width <= 0 or height <= 0:
        raise FileFormatError(f"{what} claims an empty size ({width} x {height} pixels).")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > max_pixels:
        raise FileFormatError(
            f"{what} claims to be {width} x {height} pixels, more than CanvasAI opens "
            f"(at most {MAX_IMAGE_SIDE} pixels per side and {max_pixels // 1_000_000} megapixels). "
            "It may be corrupt or a decompression bomb."
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


def _to_rgba_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> straight uint8 RGBA, keeping 16-bit data's high byte."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img)
        if mode == "I" and a.max(initial=0) <= 255:
            g = a.astype(np.uint8)
        elif mode == "I":
            g = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        else:
            g = (a.astype(np.uint16) >> 8).astype(np.uint8)
        out = np.empty(g.shape + (4,), np.uint8)
        out[..., :3] = g[..., None]
        out[..., 3] = 255
        return out
    if mode == "F":
        a = np.asarray(img, np.float32)
        g = np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.dstack([g, g, g, np.full_like(g, 255)])
    if mode in ("RGBa", "La"):
        img = img.convert(mode.replace("a", "A"))
    elif mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGBA":
        img = img.convert("RGBA")
    return np.array(img, dtype=np.uint8)


def decode_image(
    data: bytes,
    name: str = "",
    max_pixels: int = MAX_IMAGE_PIXELS,
    formats: frozenset[str] = ALLOWED_FORMATS,
) -> np.ndarray:
    """Decode image bytes into an (h, w, 4) straight uint8 RGBA array, or raise FileFormatError."""
    what = _describe(name)
    if not data:
        raise FileFormatError(f"{what} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # metadata noise in broken files
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=sorted(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FileFormatError(
            f"{what} claims an enormous size and was refused as a likely decompression bomb ({exc})."
        ) from exc
    except UnidentifiedImageError as exc:
        raise FileFormatError(
            f"{what} is not an image CanvasAI can read (PNG, JPEG, WebP, TIFF or BMP expected)."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise FileFormatError(f"{what} could not be read: {exc}.") from exc
    try:
        with img, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Truncated File Read" etc.: we raise
            if img.format not in formats and not (img.format == "MPO" and "JPEG" in formats):
                raise FileFormatError(
                    f"{what} is a {img.format} file, which CanvasAI does not open."
                )
            w, h = img.size
            check_image_size(w, h, name, max_pixels)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            if img.format in ("JPEG", "MPO", "TIFF", "WEBP"):
                transposed = ImageOps.exif_transpose(img)
                if transposed is not None and transposed is not img:
                    check_image_size(*transposed.size, name, max_pixels)
                    return _to_rgba_array(transposed)
            return _to_rgba_array(img)
    except FileFormatError:
        raise
    except MemoryError as exc:
        raise FileFormatError(f"{what} is too large to decode in the memory available.") from exc
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
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            raise FileFormatError(f"{what} is truncated or incomplete ({msg}).") from exc
        raise FileFormatError(f"{what} is corrupt and could not be decoded ({msg}).") from exc


def peek_image_size(
    data: bytes, name: str = "", formats: frozenset[str] = ALLOWED_FORMATS
) -> tuple[int, int]:
    """The (width, height) an image's header claims, without decoding pixels."""
    what = _describe(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(formats)) as img:
                return img.size
    except Image.DecompressionBombError as exc:
        raise FileFormatError(
            f"{what} claims an enormous size and was refused as a likely decompression bomb ({exc})."
        ) from exc
    except UnidentifiedImageError as exc:
        raise FileFormatError(f"{what} is not an image CanvasAI can read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise FileFormatError(f"{what} could not be read: {exc}.") from exc


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file into straight uint8 RGBA, with all the checks of `decode_image`."""
    data = read_file_limited(path, MAX_IMAGE_FILE_BYTES, "image")
    return decode_image(data, Path(path).name)


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
    """Open a PNG/JPEG/WebP/TIFF/BMP file as a one-layer document named after the file."""
    pixels = read_image(path)
    h, w = pixels.shape[:2]
    layer = image_to_layer(pixels, Path(path).stem)
    return document_from_layers(w, h, [layer], 0)
