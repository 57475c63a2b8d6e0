"""Exports: formats, alpha, scale, layers, selection, and provenance read back with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.document.document import Document
from canvasai.document.tiles import TiledSurface
from canvasai.formats.export import (
    COMPOSITE,
    EXIF_IFD,
    EXIF_USER_COMMENT,
    GENERATED,
    ExportOptions,
    decode_user_comment,
    export_flattened,
    export_layers,
    export_selection,
    format_parameters,
    source_type,
)
from tests.formats.files_helpers import flat, painted_document

GEN = {
    "prompt": "a lighthouse, at dusk",
    "negative_prompt": "blurry, text",
    "steps": 20,
    "sampler": "DPM++ 2M",
    "cfg_scale": 7.0,
    "seed": 1234,
    "width": 512,
    "height": 512,
    "model": "sd15-inpainting",
    "strength": 0.75,
    "task": "inpaint",
}
EXPECTED = (
    "a lighthouse, at dusk\nNegative prompt: blurry, text\n"
    "Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234, Size: 512x512, "
    "Model: sd15-inpainting, Denoising strength: 0.75"
)


def _xmp(img: Image.Image) -> bytes:
    raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if raw is None and hasattr(img, "tag_v2"):
        raw = img.tag_v2.get(700)
    return raw.encode() if isinstance(raw, str) else (raw or b"")


def _params(img: Image.Image) -> str | None:
    if "parameters" in img.info:
        return img.info["parameters"]
    if img.format == "TIFF":
        return img.tag_v2.get(270)
    raw = img.getexif().get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT)
    return decode_user_comment(raw) if raw is not None else None


def test_parameters_text_matches_a1111_layout():
    assert format_parameters(GEN) == EXPECTED
    assert format_parameters({"prompt": "x", "seed": 3, "lora": "a:b"}) == 'x\nSeed: 3, Lora: "a:b"'


def test_source_type_distinguishes_generated_and_composite():
    doc = painted_document()
    assert source_type(doc.layers) is None
    doc.layers[2].generation = dict(GEN)
    assert source_type(doc.layers) == COMPOSITE
    for la in doc.layers:
        la.generation = dict(GEN)
    assert source_type(doc.layers) == GENERATED
    doc.layers[0].generation = None
    doc.layers[0].visible = False  # hidden human layer does not count
    assert source_type(doc.layers) == GENERATED


@pytest.mark.parametrize(
    "fmt,suffix", [("png", ".png"), ("jpeg", ".jpg"), ("webp", ".webp"), ("tiff", ".tiff")]
)
def test_ai_touched_exports_carry_parameters_and_source_type(tmp_path, fmt, suffix):
    doc = painted_document()
    doc.layers[2].generation = dict(GEN)
    path = export_flattened(doc, tmp_path / f"out{suffix}", ExportOptions(format=fmt, quality=90))
    with Image.open(path) as img:
        assert img.size == (doc.width, doc.height)
        assert _params(img) == EXPECTED
        xmp = _xmp(img)
        assert b"Iptc4xmpExt:DigitalSourceType" in xmp
        assert b"digitalsourcetype/compositeWithTrainedAlgorithmicMedia" in xmp


def test_wholly_generated_is_marked_trained_algorithmic_media(tmp_path):
    doc = Document(32, 32, background=None)
    doc.write_pixels(doc.layers[0], 0, 0, np.full((32, 32, 4), 200, np.uint8))
    doc.layers[0].generation = dict(GEN)
    with Image.open(export_flattened(doc, tmp_path / "g.webp")) as img:
        assert b'digitalsourcetype/trainedAlgorithmicMedia"' in _xmp(img)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_metadata_setting_off_writes_none(tmp_path, suffix):
    doc = painted_document()
    doc.layers[2].generation = dict(GEN)
    opts = ExportOptions(format=suffix[1:], metadata=False)
    with Image.open(export_flattened(doc, tmp_path / f"plain{suffix}", opts)) as img:
        assert _params(img) is None and b"DigitalSourceType" not in _xmp(img)


def test_human_painting_has_no_ai_metadata(tmp_path):
    with Image.open(export_flattened(painted_document(), tmp_path / "human.png")) as img:
        assert "parameters" not in img.info and not _xmp(img)


def test_png_and_lossless_webp_keep_alpha_exactly(tmp_path):
    doc = Document(40, 30, background=None)
    px = np.random.default_rng(3).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    px[..., 3] = 255
    px[:10, :, 3] = 0
    px[:10, :, :3] = 0
    doc.write_pixels(doc.layers[0], 0, 0, px)
    for name, opts in (
        ("a.png", None),
        ("a.webp", ExportOptions("webp", lossless=True)),
        ("a.tiff", None),
    ):
        with Image.open(export_flattened(doc, tmp_path / name, opts)) as img:
            assert img.mode == "RGBA"
            assert (np.asarray(img) == flat(doc)).all()


def test_jpeg_flattens_transparency_onto_white(tmp_path):
    doc = Document(16, 16, background=None)
    with Image.open(export_flattened(doc, tmp_path / "t.jpg")) as img:
        assert img.mode == "RGB" and np.asarray(img).min() >= 250


def test_jpeg_quality_changes_size(tmp_path):
    doc = painted_document()
    lo = export_flattened(doc, tmp_path / "lo.jpg", ExportOptions("jpeg", quality=10))
    hi = export_flattened(doc, tmp_path / "hi.jpg", ExportOptions("jpeg", quality=98))
    assert lo.stat().st_size < hi.stat().st_size


def test_scale(tmp_path):
    with Image.open(
        export_flattened(painted_document(), tmp_path / "s.png", ExportOptions(scale=0.5))
    ) as img:
        assert img.size == (80, 60)


def test_export_each_layer_named_after_layers(tmp_path):
    doc = painted_document()
    doc.layers[1].name = "sky/ground: v2"
    doc.layers[2].generation = dict(GEN)
    paths = export_layers(doc, tmp_path / "layers")
    assert [p.name for p in paths] == ["01 Background.png", "02 sky_ground_ v2.png", "03 Shade.png"]
    with Image.open(paths[2]) as img:
        assert img.size == (doc.width, doc.height)
        a = np.asarray(img)
        assert a[75, 65, 3] == 128  # the layer's 50 % opacity is baked into alpha
        assert img.info["parameters"] == EXPECTED
    with Image.open(paths[1]) as img:
        assert "parameters" not in img.info


def test_export_selection_crops_and_masks(tmp_path):
    doc = painted_document()
    doc.selection = TiledSurface(1)
    sel = np.zeros((10, 20), np.uint8)
    sel[:, :10] = 255
    sel[:, 10:] = 128
    doc.selection.write(5, 7, sel)
    with Image.open(export_selection(doc, tmp_path / "sel.png")) as img:
        a = np.asarray(img)
        assert img.size == (20, 10)
        assert (a[:, :10, 3] == 255).all() and (a[:, 10:, 3] == 128).all()
    doc.selection = None
    with pytest.raises(FileFormatError, match="no selection"):
        export_selection(doc, tmp_path / "none.png")


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(FileFormatError, match="GIF|PNG, JPEG"):
        export_flattened(painted_document(), tmp_path / "x.gif", ExportOptions(format="gif"))
    with pytest.raises(FileFormatError, match="Quality"):
        export_flattened(painted_document(), tmp_path / "x.jpg", ExportOptions("jpeg", quality=0))
    assert list(tmp_path.iterdir()) == []


# -- issue 8: hostile layer names and format/suffix mismatches ------------------------------
def test_long_non_ascii_layer_names_make_short_unique_file_names(tmp_path):
    from canvasai.formats.export import MAX_NAME_BYTES, export_layers

    doc = painted_document()
    long_name = "ж漢🎨" * 70  # 210 characters, 630 bytes of UTF-8
    for layer in doc.layers:
        layer.name = long_name
    doc.layers[0].name = "a/b\\c:d\x00e"
    written = export_layers(doc, tmp_path / "out")
    assert len(written) == len(doc.layers)
    names = [p.name for p in written]
    assert len(set(names)) == len(names)
    for n in names:
        assert len(n.encode("utf-8")) <= MAX_NAME_BYTES and n.endswith(".png")
        assert "/" not in n and "\\" not in n and "\x00" not in n
        n.encode("utf-8").decode("utf-8")  # no character was cut in half
    assert names[1].startswith("02 ж漢🎨")


def test_safe_file_name_cuts_whole_characters_and_dedups():
    from canvasai.formats.export import safe_file_name

    taken: set[str] = set()
    first = safe_file_name("🎨" * 100, ".tiff", taken, max_bytes=50)
    second = safe_file_name("🎨" * 100, ".tiff", taken, max_bytes=50)
    assert first != second and second.endswith(" (2).tiff")
    assert all(len(n.encode()) <= 50 for n in (first, second))
    assert safe_file_name("CON", ".png") == "_CON.png"


def test_format_that_contradicts_the_suffix_is_refused(tmp_path):
    from canvasai.core.errors import FileFormatError
    from canvasai.formats.export import ExportOptions, export_flattened

    with pytest.raises(FileFormatError, match=r"ends in \.png.*TIFF"):
        export_flattened(painted_document(), tmp_path / "x.png", ExportOptions(format="tiff"))
    assert not (tmp_path / "x.png").exists()
