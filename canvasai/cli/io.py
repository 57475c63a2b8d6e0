"""Image files and progress display for the command line (no Qt, no torch).

Input images go through THE untrusted-image reader of the app
(`canvasai.formats.image_io`): the same allow-list of formats (judged from the
bytes, not the suffix), the same pixel caps and memory budget checked before
any pixel is decoded, the same EXIF orientation and transparency handling, and
truncated files refused. Its `FileFormatError` becomes a `UsageError` (exit
code 2) with the same sentence. Outputs are written atomically.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.formats.atomic import atomic_writer
from canvasai.formats.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, read_image_alpha

MAX_SIDE = MAX_IMAGE_SIDE
MAX_PIXELS = MAX_IMAGE_PIXELS
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


def _read_rgba(path: str | os.PathLike[str], what: str) -> tuple[np.ndarray, bool]:
    try:
        return read_image_alpha(path)
    except FileFormatError as exc:
        raise UsageError(f"{what}: {exc}") from exc


def read_image(path: str | os.PathLike[str], what: str = "image") -> np.ndarray:
    """H x W x 3 (RGB) or x 4 (RGBA, when the file has transparency) uint8."""
    rgba, alpha = _read_rgba(path, what)
    return rgba if alpha else np.ascontiguousarray(rgba[..., :3])


def read_mask(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    """H x W uint8 mask, 255 = regenerate. White (or opaque, for a cut-out PNG) means masked.

    Values are thresholded at 128 so JPEG noise never masks a pixel by accident.
    """
    rgba, alpha = _read_rgba(path, "mask")
    h, w = rgba.shape[:2]
    if (w, h) != tuple(size):
        raise UsageError(f"the mask is {w}x{h} but the image is {size[0]}x{size[1]}")
    if alpha and rgba[..., 3].min() < 255:  # a transparent/opaque cut-out: opaque = masked
        return np.where(rgba[..., 3] >= 128, 255, 0).astype(np.uint8)
    # ITU-R 601-2 luma, as Pillow's convert("L") computes it
    rgb = rgba[..., :3].astype(np.uint32)
    gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
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
    """Write atomically (temp file beside the target, then rename; see formats/atomic.py)."""
    p = Path(path)
    fmt = WRITE_FORMATS[p.suffix.lower()]
    im = Image.fromarray(np.ascontiguousarray(image))
    if fmt in ("JPEG", "BMP") and im.mode == "RGBA":
        im = im.convert("RGB")
    try:
        with atomic_writer(p) as f:
            im.save(f, format=fmt)
    except FileFormatError as exc:
        raise UsageError(f"cannot write {p}: {exc}") from exc


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
