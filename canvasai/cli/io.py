"""Image files and progress display for the command line (Pillow, no Qt, no torch).

Input files are untrusted: the claimed size is checked against a pixel cap before
any pixel is decoded (decompression bombs), and every decoder failure becomes a
`UsageError` with a sentence naming the file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 16384
MAX_PIXELS = 16384 * 16384
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


class UsageError(Exception):
    """Bad arguments or unreadable input: exit code 2, message without traceback."""


def _open(path: str | os.PathLike[str], what: str) -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    if not p.is_file():
        raise UsageError(f"{what} {p} is not a file")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # our own explicit check below is the bound
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(p)
            w, h = im.size
            if w <= 0 or h <= 0:
                raise UsageError(f"{what} {p} claims an empty size ({w}x{h})")
            if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
                raise UsageError(
                    f"{what} {p} is {w}x{h} pixels, more than the {MAX_SIDE}x{MAX_SIDE} "
                    "limit (it may be corrupt or a decompression bomb)"
                )
            im.load()
            im = ImageOps.exif_transpose(im)
    except UsageError:
        raise
    except UnidentifiedImageError as e:
        raise UsageError(f"{what} {p} is not an image file CanvasAI can read") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UsageError(f"{what} {p} is too large to open safely ({e})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UsageError(f"{what} {p} is truncated or corrupt ({e})") from e
    return im


def read_image(path: str | os.PathLike[str], what: str = "image") -> np.ndarray:
    """H x W x 3 (RGB) or x 4 (RGBA, when the file has transparency) uint8."""
    im = _open(path, what)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    )
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = Image.fromarray((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(im.convert("RGBA" if has_alpha else "RGB")))


def read_mask(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    """H x W uint8 mask, 255 = regenerate. White (or opaque, for a cut-out PNG) means masked.

    Values are thresholded at 128 so JPEG noise never masks a pixel by accident.
    """
    im = _open(path, "mask")
    if im.size != tuple(size):
        raise UsageError(
            f"the mask is {im.size[0]}x{im.size[1]} but the image is {size[0]}x{size[1]}"
        )
    if im.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:  # a transparent/opaque cut-out: opaque = masked
            return np.where(alpha >= 128, 255, 0).astype(np.uint8)
    gray = np.asarray(im.convert("L"))
    return np.where(gray >= 128, 255, 0).astype(np.uint8)


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Validate an output path before any work is done."""
    p = Path(path)
    if p.suffix.lower() not in WRITE_FORMATS:
        raise UsageError(
            f"cannot write {p}: use one of {', '.join(sorted(set(WRITE_FORMATS)))} as extension"
        )
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {p}: folder {parent} does not exist")
    return p


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write atomically (temp file in the same folder, then rename)."""
    p = Path(path)
    fmt = WRITE_FORMATS[p.suffix.lower()]
    im = Image.fromarray(np.ascontiguousarray(image))
    if fmt in ("JPEG", "BMP") and im.mode == "RGBA":
        im = im.convert("RGB")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format=fmt)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ProgressPrinter:
    """A one-line progress bar on a terminal, plain 'step i/n' lines otherwise."""

    def __init__(self, stream: TextIO | None = None, label: str = "generating") -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._open_line = False

    def __call__(self, step: int, total: int) -> None:
        elapsed = time.monotonic() - self.t0
        if self.tty:
            width = 30
            filled = int(width * step / max(total, 1))
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {step}/{total} {elapsed:5.1f}s")
            self._open_line = True
        else:
            self.stream.write(f"{self.label}: step {step}/{total} ({elapsed:.1f}s)\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.end_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
