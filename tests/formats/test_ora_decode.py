"""Opening .ora layers (issue 15): decoded one layer ahead on a second thread and turned
into tiles a tile row at a time, fully transparent tiles never allocated; the same
pixels as a plain decode, whatever the offset, clip, PNG flavour or damage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.core.geometry import Rect
from canvasai.document.layer import Layer
from canvasai.document.tiles import TiledSurface
from canvasai.formats.image_io import document_from_layers
from canvasai.formats.ora import load_ora, ora_bytes
from canvasai.formats.png_codec import encode_png
from tests.formats.files_helpers import make_ora, stack_xml


def _png(px: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px).convert(mode).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.mark.parametrize("seed", range(4))
def test_layers_match_a_plain_decode_for_any_offset_clip_and_flavour(seed):
    rng = np.random.default_rng(seed)
    w, h = 170, 130
    members, layers, expected = {}, "", []
    for i, mode in enumerate(("RGBA", "RGB", "P", "LA")):
        lh, lw = (int(v) for v in rng.integers(1, 220, 2))
        px = rng.integers(0, 256, (lh, lw, 4), dtype=np.uint8)
        px[: lh // 3, :, 3] = 0  # a transparent band: its tiles must not exist
        x, y = (int(v) for v in rng.integers(-90, 150, 2))
        data = encode_png(px) if mode == "RGBA" else _png(px, mode)
        members[f"data/{i}.png"] = data
        layers = f'<layer name="L{i}" src="data/{i}.png" x="{x}" y="{y}"/>' + layers
        plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
        ref = TiledSurface(4)
        part = Rect(x, y, lw, lh).intersect(Rect(0, 0, w, h))
        if not part.is_empty():
            ref.write(part.x, part.y, plain[part.y - y:part.y1 - y, part.x - x:part.x1 - x])
        expected.append(ref)
    doc = load_ora(make_ora({"stack.xml": stack_xml(w, h, layers), **members}))
    for layer, ref in zip(doc.layers, expected, strict=True):
        got, want = layer.surface.read(doc.rect), ref.read(doc.rect)
        visible = want[..., 3] > 0
        assert np.array_equal(got[visible], want[visible])
        assert not got[~visible][..., 3].any()
        for key in layer.surface.tile_keys():
            assert layer.surface.tile(key)[..., 3].any()


def test_sparse_layers_round_trip_without_transparent_tiles():
    rng = np.random.default_rng(4)
    layers = []
    for i in range(5):
        surf = TiledSurface(4)
        px = rng.integers(0, 256, (200, 210, 4), dtype=np.uint8)
        px[30:150, :, 3] = 0  # invisible, though its colour bytes are not zero
        surf.write(13 * i, 7 * i, px)
        layers.append(Layer(f"L{i}", surf))
    doc = document_from_layers(400, 300, layers)
    back = load_ora(ora_bytes(doc))
    assert [la.name for la in back.layers] == [la.name for la in layers]
    for mine, theirs in zip(back.layers, layers, strict=True):
        got, want = mine.surface.read(doc.rect), theirs.surface.read(doc.rect)
        visible = want[..., 3] > 0
        assert np.array_equal(got[visible], want[visible])
        assert not got[~visible][..., 3].any()
        assert len(mine.surface.tile_keys()) < len(theirs.surface.tile_keys())


def test_uniform_full_layers_become_a_fill_and_damage_is_refused():
    white = np.full((60, 80, 4), 255, np.uint8)
    rgb = np.full((60, 80, 3), (10, 20, 30), np.uint8)
    layers = '<layer name="a" src="data/a.png"/><layer name="b" src="data/b.png"/>'
    doc = load_ora(make_ora({"stack.xml": stack_xml(80, 60, layers),
                             "data/a.png": encode_png(white), "data/b.png": encode_png(rgb)}))
    assert [la.surface.fill.tolist() for la in doc.layers] == [[10, 20, 30, 255],
                                                               [255, 255, 255, 255]]
    assert all(la.surface.tile_keys() == [] for la in doc.layers)
    data = encode_png(np.random.default_rng(1).integers(0, 256, (90, 70, 4), dtype=np.uint8))
    for broken in (data[: len(data) // 2], data[:60] + bytes([data[60] ^ 0xFF]) + data[61:]):
        with pytest.raises(FileFormatError):
            load_ora(make_ora({"stack.xml": stack_xml(80, 60, layers), "data/a.png": broken,
                               "data/b.png": encode_png(rgb)}))
