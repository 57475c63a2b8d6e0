"""OpenRaster: layout other programs expect, round trips, extras, atomic saves."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.document.blend import BlendMode
from canvasai.document.tiles import TiledSurface
from canvasai.formats.ora import load_ora, ora_bytes, save_ora
from tests.formats.files_helpers import (
    flat,
    make_ora,
    painted_document,
    png_bytes,
    red_square,
    stack_xml,
)


def test_layout_follows_the_openraster_spec(tmp_path):
    doc = painted_document()
    path = tmp_path / "p.ora"
    save_ora(doc, path)
    raw = path.read_bytes()
    # mimetype first, stored, no extra field: readable at a fixed offset.
    assert raw[30:38] == b"mimetype" and raw[38:54] == b"image/openraster"
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        names = zf.namelist()
        for required in ("stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"):
            assert required in names
        root = ET.fromstring(zf.read("stack.xml"))
        layers = root.find("stack").findall("layer")
        assert [la.get("name") for la in layers] == ["Shade", "Layer 1", "Background"]  # top first
        shade = layers[0]
        assert shade.get("composite-op") == "svg:multiply" and float(shade.get("opacity")) == 0.5
        assert (shade.get("x"), shade.get("y")) == ("60", "70")
        assert Image.open(io.BytesIO(zf.read(shade.get("src")))).size == (90, 40)  # cropped
        bg = Image.open(io.BytesIO(zf.read(layers[2].get("src"))))
        assert bg.size == (160, 120)  # the white fill is written out in full
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGBA"))
        assert (merged == flat(doc)).all()
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
        assert max(thumb.size) <= 256


def test_thumbnail_is_at_most_256_for_big_canvas():
    from canvasai.document.document import Document

    data = ora_bytes(Document(1000, 300))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png"))).size == (256, 77)


def test_round_trip_keeps_pixels_properties_and_extras(tmp_path):
    doc = painted_document()
    doc.layers[0].locked = True
    doc.layers[1].is_sketch = True
    doc.layers[1].visible = False
    thumb = np.full((6, 9, 3), 77, np.uint8)
    doc.layers[2].generation = {
        "prompt": "dusk, hills",
        "seed": 42,
        "cfg_scale": 6.5,
        "preview": thumb,
    }
    doc.metadata["generation_history"] = [
        {
            "prompt": "one",
            "seed": 1,
            "thumbnail": np.zeros((4, 4, 4), np.uint8),
            "raw": b"\x00\x01",
        },
    ]
    doc.selection = TiledSurface(1)
    doc.selection.write(5, 6, np.full((7, 8), 200, np.uint8))
    doc.set_active(1)
    path = tmp_path / "round.ora"
    save_ora(doc, path)
    back = load_ora(path)
    assert (back.width, back.height) == (doc.width, doc.height)
    assert [la.name for la in back.layers] == [la.name for la in doc.layers]
    for a, b in zip(doc.layers, back.layers, strict=True):
        assert (a.opacity, a.visible, a.blend_mode, a.locked, a.is_sketch) == (
            b.opacity,
            b.visible,
            b.blend_mode,
            b.locked,
            b.is_sketch,
        )
        assert (a.surface.read(doc.rect) == b.surface.read(doc.rect)).all()
    assert back.layers[0].surface.tile_keys() == []  # uniform background is a fill again
    assert (back.layers[0].surface.fill == (255, 255, 255, 255)).all()
    gen = back.layers[2].generation
    assert gen["prompt"] == "dusk, hills" and gen["seed"] == 42 and gen["cfg_scale"] == 6.5
    assert gen["preview"].shape == (6, 9, 3) and (gen["preview"] == 77).all()
    hist = back.metadata["generation_history"][0]
    assert hist["thumbnail"].shape == (4, 4, 4) and hist["raw"] == b"\x00\x01"
    assert (back.mask.read(doc.rect) == doc.mask.read(doc.rect)).all()
    assert (back.selection.read(doc.rect) == doc.selection.read(doc.rect)).all()
    assert back.active_index == 1
    assert not back.history.can_undo()
    assert (flat(back) == flat(doc)).all()


def test_empty_layer_and_no_selection_round_trip():
    from canvasai.document.document import Document

    doc = Document(50, 40, background=None)
    back = load_ora(ora_bytes(doc))
    assert len(back.layers) == 1 and back.layers[0].surface.tile_keys() == []
    assert back.selection is None
    assert back.mask.tile_keys() == []


def test_save_is_atomic_when_interrupted(tmp_path):
    path = tmp_path / "keep.ora"
    first = painted_document(seed=1)
    save_ora(first, path)
    before = path.read_bytes()

    def boom(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt  # a kill between two layers

    with pytest.raises(KeyboardInterrupt):
        save_ora(painted_document(seed=2), path, progress=boom)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ora"]  # no temp left


def test_save_to_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileFormatError, match="previous file is unchanged"):
        save_ora(painted_document(), tmp_path / "missing" / "x.ora")


def test_progress_reports_every_step():
    seen = []
    from canvasai.formats.ora import write_ora

    write_ora(painted_document(), io.BytesIO(), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))


def test_reads_files_written_by_other_programs():
    """A Krita/MyPaint-style file: groups, unknown attributes and elements, no extras."""
    red = png_bytes(red_square(8))
    blue = red_square(4)
    blue[..., :3] = (0, 0, 255)
    layers = (
        '<layer name="top" src="data/a.png" x="2" y="3" opacity="0.5" visibility="visible"'
        ' composite-op="svg:screen" krita:some="1" xmlns:krita="http://krita.org" selected="true"/>'
        '<stack name="group" x="10" y="10" opacity="0.5" visibility="visible">'
        '  <layer name="inner" src="./data/b.png" x="1" y="1" opacity="1"/>'
        "  <text>not a layer</text>"
        "</stack>"
        '<stack name="hidden group" visibility="hidden"><layer name="h" src="data/a.png"/></stack>'
        '<layer name="odd op" src="data/a.png" composite-op="krita:dissolve"/>'
    )
    data = make_ora(
        {
            "stack.xml": stack_xml(32, 24, layers),
            "data/a.png": red,
            "data/b.png": png_bytes(blue),
        }
    )
    doc = load_ora(data)
    names = [la.name for la in doc.layers]
    assert names == ["odd op", "h", "inner", "top"]  # bottom first
    inner = doc.layers[2]
    assert inner.opacity == 0.5 and inner.surface.bounds().x == 11
    assert not doc.layers[1].visible
    assert doc.layers[0].blend_mode is BlendMode.NORMAL
    assert doc.layers[3].blend_mode is BlendMode.SCREEN and doc.layers[3].opacity == 0.5
    assert doc.active_index == 3


def test_layer_partly_outside_canvas_is_clipped():
    data = make_ora(
        {
            "stack.xml": stack_xml(10, 10, '<layer src="a.png" x="-4" y="6"/>'),
            "a.png": png_bytes(red_square(8)),
        }
    )
    doc = load_ora(data)
    from canvasai.core.geometry import Rect

    assert doc.layers[0].surface.bounds() == Rect(0, 6, 4, 4)


@pytest.mark.parametrize("workers", [1, 3])
def test_png_encoder_round_trips_through_pillow(workers):
    from canvasai.formats.ora_extras import encode_png

    rng = np.random.default_rng(5)
    # (1500, 2000, 4) random: several deflate pieces and more than one IDAT chunk.
    for shape in [(1, 1), (3, 5, 1), (7, 9, 2), (17, 11, 3), (40, 33, 4), (1500, 2000, 4)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        img = Image.open(io.BytesIO(encode_png(a, 1, workers)))
        img.load()
        assert (np.asarray(img).reshape(a.shape) == a).all(), shape


def test_parallel_flatten_matches_serial():
    from canvasai.core.geometry import Rect
    from canvasai.formats.ora import flatten_parallel

    doc = painted_document(300, 1100)
    rect = Rect(0, 0, 300, 1100)
    assert (flatten_parallel(doc.layers, rect, workers=3, band=256) == flat(doc)).all()
