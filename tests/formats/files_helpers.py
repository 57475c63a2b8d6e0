"""Shared builders for the file-format tests: small documents and hand-made archives."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from canvasai.document.blend import BlendMode
from canvasai.document.compositing import composite_layers
from canvasai.document.document import Document


def painted_document(width: int = 160, height: int = 120, seed: int = 0) -> Document:
    """A white background plus two painted layers (one multiply, half opaque) and a mask."""
    rng = np.random.default_rng(seed)
    doc = Document(width, height)
    layer = doc.layers[1]
    px = rng.integers(0, 256, (50, 70, 4), dtype=np.uint8)
    px[..., 3] = np.linspace(30, 255, 70, dtype=np.uint8)[None, :]
    doc.write_pixels(layer, 13, 21, px)
    top = doc.add_layer("Shade")
    shade = np.zeros((40, 90, 4), np.uint8)
    shade[..., :3] = (40, 80, 200)
    shade[..., 3] = 255
    doc.write_pixels(top, 60, 70, shade)
    doc.set_layer_properties(top, blend_mode=BlendMode.MULTIPLY, opacity=0.5)
    doc.mask.write(30, 30, np.full((20, 25), 255, np.uint8))
    return doc


def flat(doc: Document) -> np.ndarray:
    return composite_layers(doc.layers, doc.rect)


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_ora(members: dict[str, bytes], mimetype: bytes | None = b"image/openraster") -> bytes:
    """An archive with exactly these members (after an optional stored mimetype)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if mimetype is not None:
            zf.writestr(zipfile.ZipInfo("mimetype"), mimetype)
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def stack_xml(w: int, h: int, layers: str) -> bytes:
    return f'<?xml version="1.0"?><image w="{w}" h="{h}"><stack>{layers}</stack></image>'.encode()


def red_square(size: int = 8) -> np.ndarray:
    px = np.zeros((size, size, 4), np.uint8)
    px[..., 0] = 255
    px[..., 3] = 255
    return px
