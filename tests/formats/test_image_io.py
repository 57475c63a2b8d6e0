"""Opening raster images as one-layer documents, and refusing broken ones clearly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.document.compositing import composite_layers
from canvasai.formats.image_io import decode_image, image_to_layer, open_image_document


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt,suffix,lossless",
    [
        ("PNG", ".png", True),
        ("WEBP", ".webp", True),
        ("TIFF", ".tif", True),
        ("BMP", ".bmp", True),
        ("JPEG", ".jpg", False),
    ],
)
def test_open_formats_as_one_layer_document(tmp_path, fmt, suffix, lossless):
    yy, xx = np.mgrid[0:37, 0:53]
    rgb = np.dstack([xx * 4, yy * 6, (xx + yy) * 2]).astype(np.uint8)
    mode_img = Image.fromarray(rgb, "RGB")
    kw = {"lossless": True} if fmt == "WEBP" else {}
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(_save(mode_img, fmt, **kw))
    doc = open_image_document(path)
    assert (doc.width, doc.height) == (53, 37)
    assert len(doc.layers) == 1 and doc.layers[0].name == "photo"
    assert not doc.history.can_undo()
    out = composite_layers(doc.layers, doc.rect)
    assert (out[..., 3] == 255).all()
    diff = np.abs(out[..., :3].astype(int) - rgb.astype(int))
    assert diff.max() == 0 if lossless else diff.mean() < 4


def test_png_alpha_and_grey_and_16bit_are_converted():
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[1, 2] = (10, 20, 30, 128)
    assert (decode_image(_save(Image.fromarray(rgba, "RGBA"), "PNG")) == rgba).all()
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    out = decode_image(_save(Image.fromarray(grey, "L"), "PNG"))
    assert (out[..., 0] == grey).all() and (out[..., 3] == 255).all()
    deep = np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000
    out16 = decode_image(_save(Image.fromarray(deep), "PNG"))
    assert (out16[..., 1] == (deep >> 8)).all()


def test_transparent_areas_allocate_no_tiles():
    px = np.zeros((300, 300, 4), np.uint8)
    px[10:20, 10:20] = 255
    layer = image_to_layer(px, "dot")
    assert layer.surface.tile_keys() == [(0, 0)]


def test_jpeg_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_save(img, "JPEG", exif=exif))
    assert out.shape[:2] == (40, 20)


@pytest.mark.parametrize(
    "payload,needle",
    [
        (b"", "empty"),
        (b"hello, I am a text file\n" * 5, "not an image"),
        (b"GIF89a" + b"\0" * 40, "not an image"),
    ],
)
def test_non_images_are_refused(tmp_path, payload, needle):
    path = tmp_path / "fake.png"
    path.write_bytes(payload)
    with pytest.raises(FileFormatError, match=needle):
        open_image_document(path)
    assert path.read_bytes() == payload


def test_missing_file_and_folder_have_clear_messages(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        open_image_document(tmp_path / "nope.png")
    with pytest.raises(FileFormatError, match="folder"):
        open_image_document(tmp_path)
