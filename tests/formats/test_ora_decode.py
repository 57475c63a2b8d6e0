"""Opening .ora layers straight into tiles (issue 15): same pixels as Pillow, fully
transparent tiles never allocated, other programs' PNGs through the fallback, in parallel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.core.geometry import Rect
from canvasai.document.layer import Layer
from canvasai.document.tiles import TiledSurface
from canvasai.formats import ora
from canvasai.formats.image_io import document_from_layers
from canvasai.formats.ora import load_ora, ora_bytes
from canvasai.formats.png_codec import NotStreamable, decode_png_tiles, encode_png
from tests.formats.files_helpers import make_ora, stack_xml


def _reference_tiles(px, x, y, bounds):
    surf = TiledSurface(4)
    part = Rect(x, y, px.shape[1], px.shape[0]).intersect(Rect.from_bounds(*bounds))
    if not part.is_empty():
        surf.write(part.x, part.y, px[part.y - y:part.y1 - y, part.x - x:part.x1 - x])
    return {k: t for k in surf.tile_keys() if (t := surf.tile(k))[..., 3].any()}


def _pillow_png(px: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px, "RGBA").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.mark.parametrize("seed", range(6))
def test_tiles_match_pillow_for_any_offset_and_clip(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 260, 2))
    px = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[: h // 3, :, 3] = 0  # a transparent band: its tiles must not exist
    x, y = (int(v) for v in rng.integers(-90, 150, 2))
    bounds = (0, 0, int(rng.integers(40, 300)), int(rng.integers(40, 300)))
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(px))).convert("RGBA"))
    tiles, uniform = decode_png_tiles(encode_png(px), x, y, bounds, 64)
    ref = _reference_tiles(decoded, x, y, bounds)
    assert uniform is None and set(tiles) == set(ref)
    for key, tile in ref.items():
        assert np.array_equal(tiles[key], tile)
    rgb = px[..., :3].copy()  # RGB PNGs become opaque RGBA
    tiles, _ = decode_png_tiles(encode_png(rgb), x, y, bounds, 64)
    opaque = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
    assert set(tiles) == set(_reference_tiles(opaque, x, y, bounds))


def test_other_filters_and_damage():
    px = np.random.default_rng(1).integers(0, 256, (90, 70, 4), dtype=np.uint8)
    with pytest.raises(NotStreamable):  # Pillow filters adaptively (Paeth, Average, ...)
        decode_png_tiles(_pillow_png(px), 0, 0, (0, 0, 70, 90), 64)
    data = encode_png(px)
    with pytest.raises(FileFormatError):
        decode_png_tiles(data[: len(data) // 2], 0, 0, (0, 0, 70, 90), 64)
    bad = bytearray(data)
    bad[60] ^= 0xFF  # inside the first IDAT: its CRC no longer matches
    with pytest.raises(FileFormatError):
        decode_png_tiles(bytes(bad), 0, 0, (0, 0, 70, 90), 64)


def _doc_with_sparse_layers() -> tuple:
    rng = np.random.default_rng(4)
    layers = []
    for i in range(5):
        surf = TiledSurface(4)
        px = rng.integers(0, 256, (150, 210, 4), dtype=np.uint8)
        px[40:110] = 0  # a fully transparent middle: no tiles there after opening
        surf.write(13 * i, 7 * i, px)
        layers.append(Layer(f"L{i}", surf))
    return document_from_layers(400, 300, layers), layers


def test_open_decodes_into_tiles_without_transparent_ones(monkeypatch):
    doc, layers = _doc_with_sparse_layers()
    data = ora_bytes(doc)
    serial = None
    for workers in (1, 3):
        monkeypatch.setattr(ora, "decode_workers", lambda n=workers: n)
        back = load_ora(data)
        assert [la.name for la in back.layers] == [la.name for la in layers]
        for mine, theirs in zip(back.layers, layers, strict=True):
            assert np.array_equal(mine.surface.read(doc.rect), theirs.surface.read(doc.rect))
            for key in mine.surface.tile_keys():
                assert mine.surface.tile(key)[..., 3].any()
        keys = [sorted(la.surface.tile_keys()) for la in back.layers]
        serial = serial or keys
        assert keys == serial


def test_foreign_pngs_use_the_fallback_and_uniform_layers_become_a_fill():
    px = np.random.default_rng(2).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    white = np.full((60, 80, 4), 255, np.uint8)
    layers = ('<layer name="top" src="data/a.png" x="5" y="6"/>'
              '<layer name="bg" src="data/b.png"/>')
    data = make_ora({"stack.xml": stack_xml(80, 60, layers), "data/a.png": _pillow_png(px),
                     "data/b.png": encode_png(white)})
    doc = load_ora(data)
    assert doc.layers[0].surface.tile_keys() == [] and doc.layers[0].surface.fill.tolist() == [
        255, 255, 255, 255]
    assert np.array_equal(doc.layers[1].surface.read(Rect(5, 6, 50, 40)), px)
