"""Untrusted input: every case gets a clear FileFormatError, and neither the open
document nor any file on disk changes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from canvasai.core.errors import FileFormatError
from canvasai.formats.image_io import open_image_document
from canvasai.formats.ora import OraLimits, load_ora, ora_bytes
from tests.formats.files_helpers import (
    flat,
    make_ora,
    painted_document,
    png_bytes,
    red_square,
    stack_xml,
)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid-looking PNG header claiming w x h RGBA pixels (a few dozen bytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


class Scene:
    """An open document and a folder whose files must survive every refused read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.doc = painted_document()
        self.pixels = flat(self.doc)
        self.revision = self.doc.history.revision
        self.layers = list(self.doc.layers)

    def listing(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.folder)): p.read_bytes()
            for p in sorted(self.folder.rglob("*"))
            if p.is_file()
        }

    def refuse(self, name: str, data: bytes, match: str, reader=load_ora, **kw) -> FileFormatError:
        path = self.folder / name
        path.write_bytes(data)
        before = self.listing()
        with pytest.raises(FileFormatError, match=match) as info:
            reader(path, **kw)
        assert self.listing() == before, "a refused file changed files on disk"
        assert self.doc.layers == self.layers and self.doc.history.revision == self.revision
        assert (flat(self.doc) == self.pixels).all()
        assert len(str(info.value)) > 20 and name in str(info.value)
        return info.value


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return Scene(tmp_path)


# -- images ---------------------------------------------------------------------------
def test_decompression_bomb_png_is_refused_before_decoding(scene):
    scene.refuse(
        "bomb.png",
        bomb_png(),
        "decompression bomb|more than CanvasAI opens",
        reader=open_image_document,
    )


def test_absurd_png_side_is_refused(scene):
    scene.refuse(
        "wide.png", bomb_png(40_000, 2), "more than CanvasAI opens", reader=open_image_document
    )


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_truncated_images_are_refused(scene, kind):
    data = (
        png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8))
        if kind == "png"
        else _jpeg()
    )
    scene.refuse(
        f"cut.{kind}",
        data[: len(data) // 2],
        "truncated|corrupt|could not be read",
        reader=open_image_document,
    )


def test_non_image_with_image_extension_is_refused(scene):
    scene.refuse("notes.jpg", b"Dear diary,\n" * 100, "not an image", reader=open_image_document)


# -- archives ---------------------------------------------------------------------------
def _valid_members() -> dict[str, bytes]:
    return {
        "stack.xml": stack_xml(8, 8, '<layer src="data/a.png"/>'),
        "data/a.png": png_bytes(red_square()),
    }


@pytest.mark.parametrize(
    "evil", ["../../evil", "/tmp/evil-absolute", "data/../../evil", "C:/evil", "..\\..\\evil"]
)
def test_zip_slip_member_names_are_refused_and_never_written(scene, evil):
    members = _valid_members()
    members[evil] = b"owned"
    scene.refuse("slip.ora", make_ora(members), "unsafe name")
    assert not (scene.folder.parent / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()


def test_member_inflating_past_the_cap_is_refused(scene):
    members = _valid_members()
    members["data/big.bin"] = b"\0" * (4 << 20)  # 4 MiB of zeros: ~4 KiB deflated
    scene.refuse(
        "bomb.ora", make_ora(members), "zip bomb", limits=OraLimits(max_member_bytes=1 << 20)
    )


def test_huge_total_is_refused(scene):
    members = _valid_members()
    for i in range(10):
        members[f"data/pad{i}.bin"] = b"\0" * (1 << 20)
    scene.refuse(
        "total.ora", make_ora(members), "zip bomb", limits=OraLimits(max_total_bytes=4 << 20)
    )


def test_member_lying_about_its_size_is_refused_while_inflating(scene):
    members = {
        "stack.xml": stack_xml(8, 8, '<layer src="data/a.png"/>'),
        "data/a.png": b"\0" * (2 << 20),
    }
    data = bytearray(make_ora(members))
    # Rewrite data/a.png's declared size (local header and central directory) to 100 bytes.
    name = b"data/a.png"
    for sig, size_off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = 0
        while (pos := data.find(sig, pos)) != -1:
            name_off = 30 if sig == b"PK\x03\x04" else 46
            if data[pos + name_off : pos + name_off + len(name)] == name:
                struct.pack_into("<I", data, pos + size_off, 100)
            pos += 4
    scene.refuse("liar.ora", bytes(data), "zip bomb|damaged|declared")


def test_missing_stack_xml(scene):
    scene.refuse(
        "nostack.ora", make_ora({"data/a.png": png_bytes(red_square())}), "stack.xml is missing"
    )


def test_not_a_zip(scene):
    scene.refuse("plain.ora", b"this is not a zip" * 20, "not a valid zip")


def test_wrong_mimetype(scene):
    scene.refuse("mt.ora", make_ora(_valid_members(), mimetype=b"application/x-krita"), "mimetype")


@pytest.mark.parametrize(
    "xml,match",
    [
        (b"<image w='8' h='8'><stack><layer src='a.png'></stack>", "not well-formed"),
        (b"\xff\xfe garbage", "not well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b'<image w="8" h="8"><stack><layer name="&lol2;" src="a.png"/></stack></image>',
            "DTD",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><image w="8" h="8"/>',
            "DTD",
        ),
        (b"<notimage/>", "does not describe an image"),
    ],
)
def test_malformed_or_hostile_xml(scene, xml, match):
    scene.refuse("xml.ora", make_ora({"stack.xml": xml, "a.png": png_bytes(red_square())}), match)


def test_layer_pointing_at_missing_file(scene):
    scene.refuse(
        "missing.ora",
        make_ora({"stack.xml": stack_xml(8, 8, '<layer src="data/gone.png"/>')}),
        "missing from the file",
    )


def test_layer_without_src(scene):
    scene.refuse(
        "nosrc.ora", make_ora({"stack.xml": stack_xml(8, 8, '<layer name="x"/>')}), "no src"
    )


@pytest.mark.parametrize(
    "w,h,match",
    [
        ("-5", "8", "invalid image size"),
        ("0", "8", "invalid image size"),
        ("100000", "8", "invalid image size"),
        ("abc", "8", "non-numeric"),
        ("1e300", "8", "absurd"),
    ],
)
def test_negative_or_absurd_image_size(scene, w, h, match):
    xml = f'<image w="{w}" h="{h}"><stack><layer src="a.png"/></stack></image>'.encode()
    scene.refuse("size.ora", make_ora({"stack.xml": xml, "a.png": png_bytes(red_square())}), match)


@pytest.mark.parametrize(
    "attrs,match",
    [
        ('x="1e12"', "absurd"),
        ('y="-99999999"', "absurd"),
        ('x="nan"', "absurd"),
        ('opacity="nan"', "invalid opacity"),
        ('opacity="lots"', "non-numeric opacity"),
    ],
)
def test_absurd_offsets_and_values(scene, attrs, match):
    members = {
        "stack.xml": stack_xml(8, 8, f'<layer src="a.png" {attrs}/>'),
        "a.png": png_bytes(red_square()),
    }
    scene.refuse("offs.ora", make_ora(members), match)


def test_layer_png_that_is_a_bomb_or_broken(scene):
    members = {"stack.xml": stack_xml(8, 8, '<layer src="a.png"/>'), "a.png": bomb_png()}
    scene.refuse("layerbomb.ora", make_ora(members), "decompression bomb|too many|more than")
    members["a.png"] = png_bytes(red_square())[:40]
    scene.refuse(
        "layercut.ora", make_ora(members), "truncated|corrupt|could not be read|not an image"
    )
    members["a.png"] = b"GIF89a not png"
    scene.refuse("layergif.ora", make_ora(members), "not an image")


def test_total_layer_pixels_are_capped(scene):
    layers = "".join('<layer src="a.png"/>' for _ in range(5))
    members = {"stack.xml": stack_xml(8, 8, layers), "a.png": png_bytes(red_square())}
    scene.refuse(
        "many.ora", make_ora(members), "more pixels", limits=OraLimits(max_total_pixels=200)
    )


def test_file_from_a_newer_version_opens_with_unknown_parts_ignored(scene):
    doc = painted_document()
    data = ora_bytes(doc)
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "stack.xml":
                body = body.replace(
                    b"<stack>",
                    b'<stack future:x="1" xmlns:future="urn:f">'
                    b'<hologram depth="3"><layer src="nowhere"/></hologram>'
                    b'<filter type="blur"/>',
                    1,
                )
                body = body.replace(b'version="0.0.5"', b'version="9.9.9" new-thing="yes"', 1)
            if info.filename == "canvasai/document.json":
                body = body.replace(b'"version": 1', b'"version": 7, "quantum": {"a": 1}', 1)
            zf.writestr(info, body)
        zf.writestr("future/stuff.bin", b"\x00" * 10)
    path = scene.folder / "future.ora"
    path.write_bytes(out.getvalue())
    back = load_ora(path)
    assert [la.name for la in back.layers] == [la.name for la in doc.layers]
    assert (flat(back) == flat(doc)).all()


def test_corrupt_extras_are_ignored_not_fatal(scene):
    members = _valid_members()
    members["canvasai/document.json"] = b"{not json"
    doc = load_ora(make_ora(members))
    assert len(doc.layers) == 1
    members["canvasai/document.json"] = (
        b'{"format": "canvasai-ora-extras", "version": 1, "mask": {"src": "../x.png"},'
        b' "metadata": {"t": {"$png": "data/a.png", "shape": [8, 8, 4]}}, "layers": 5}'
    )
    doc = load_ora(make_ora(members))
    assert doc.mask.tile_keys() == [] and doc.metadata == {"t": None}


# -- issue 8: one untrusted-image reader for the app and the CLI ------------------------
def _eps_bytes() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
        b"newpath 0 0 moveto 10 10 lineto stroke showpage\n%%EOF\n"
    )


def _cli_read(path):
    from canvasai.cli.io import UsageError, read_image

    try:
        return read_image(path)
    except UsageError as exc:
        raise FileFormatError(f"{path.name}: {exc}") from exc


@pytest.mark.parametrize("reader", [open_image_document, _cli_read], ids=["app", "cli"])
def test_eps_renamed_png_is_refused_by_app_and_cli_without_ghostscript(scene, reader, monkeypatch):
    from PIL import EpsImagePlugin

    def no_ghostscript(*a, **k):
        raise AssertionError("Ghostscript must never run on untrusted input")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    scene.refuse("drawing.png", _eps_bytes(), "not an image", reader=reader)


def _patched_jpeg(w: int, h: int, arithmetic: bool = False) -> bytes:
    """A complete 16x16 JPEG (632 bytes) whose frame header claims w x h pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, h, w)
    if arithmetic:
        data[sof + 1] = 0xC9
    return bytes(data)


@pytest.mark.parametrize("reader", [open_image_document, _cli_read], ids=["app", "cli"])
def test_tiny_jpeg_claiming_16000_squared_is_refused_before_decoding(scene, reader, monkeypatch):
    from PIL import ImageFile

    calls = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: calls.append(1) or real_load(self)
    )
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # set by some other library
    scene.refuse("tiny.jpg", _patched_jpeg(16000, 16000), "truncated or corrupt", reader=reader)
    scene.refuse(
        "arith.jpg", _patched_jpeg(16000, 16000, True), "truncated or corrupt", reader=reader
    )
    assert calls == [], "pixels were decoded before the refusal"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored after our decode


def test_truncated_images_are_refused_even_when_pillow_is_told_to_pad_them(scene, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _jpeg()
    scene.refuse("cut.jpg", data[:-2], "truncated or corrupt", reader=open_image_document)
    png = png_bytes(np.random.default_rng(1).integers(0, 255, (64, 64, 4), dtype=np.uint8))
    scene.refuse("cut.png", png[: len(png) * 2 // 3], "truncated|corrupt", reader=_cli_read)


def test_image_over_the_memory_budget_is_refused_before_decoding(monkeypatch):
    from canvasai.formats import image_io
    from canvasai.formats.budget import MemoryBudget

    data = png_bytes(np.zeros((300, 300, 4), np.uint8))
    monkeypatch.setattr(image_io, "_to_rgba_array", lambda img: pytest.fail("decoded"))
    with pytest.raises(FileFormatError, match="memory"):
        image_io.decode_image(data, "big.png", budget=MemoryBudget(100_000, "big.png"))


def test_app_and_cli_apply_the_same_exif_orientation_to_a_png(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rot.png"
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, "PNG", exif=exif)
    doc = open_image_document(path)
    assert (doc.width, doc.height) == (20, 40)
    assert _cli_read(path).shape[:2] == (40, 20)


def test_gif_first_frame_opens_and_16bit_grey_transparency_is_kept(tmp_path):
    from PIL import Image

    from canvasai.cli.io import read_image as cli_read
    from canvasai.formats.image_io import decode_image

    frames = [Image.new("P", (6, 5), i) for i in (1, 2)]
    frames[0].putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue(), "anim.gif")
    assert out.shape == (5, 6, 4) and tuple(out[0, 0]) == (255, 0, 0, 255)

    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path, "PNG", transparency=6000)
    rgba = decode_image(path.read_bytes(), "deep.png")
    assert rgba[0, 2, 3] == 0 and (np.delete(rgba[..., 3].ravel(), 2) == 255).all()
    cli = cli_read(path)
    assert cli.shape == (4, 5, 4) and cli[0, 2, 3] == 0
    la = tmp_path / "la.png"
    Image.new("LA", (3, 3), (90, 40)).save(la)
    assert tuple(decode_image(la.read_bytes())[1, 1]) == (90, 90, 90, 40)
    assert cli_read(la).shape == (3, 3, 4)


# -- issue 8: one memory budget per .ora ---------------------------------------------------
def _extras(meta: str) -> bytes:
    return (
        '{"format": "canvasai-ora-extras", "version": 1, "layers": [], "metadata": ' + meta + "}"
    ).encode()


class _NoDecode:
    """Fails the test if any pixel is decoded."""

    def __init__(self, monkeypatch) -> None:
        from canvasai.formats import ora

        self.calls = 0

        def boom(*a, **k):
            self.calls += 1
            raise AssertionError("decoded before the budget check")

        monkeypatch.setattr(ora, "decode_image", boom)


def test_extras_png_refs_are_counted_per_occurrence_before_decoding(scene, monkeypatch):
    guard = _NoDecode(monkeypatch)
    refs = ",".join('{"$png": "canvasai/blobs/t.png", "shape": [512, 512, 4]}' for _ in range(40))
    members = _valid_members()
    members["canvasai/blobs/t.png"] = png_bytes(np.zeros((512, 512, 4), np.uint8))
    members["canvasai/document.json"] = _extras('{"thumbs": [' + refs + "]}")
    scene.refuse(
        "thumbs.ora", make_ora(members), "memory", limits=OraLimits(memory_budget=32 << 20)
    )
    assert guard.calls == 0


def test_one_png_reused_by_many_layers_is_counted_per_layer(scene, monkeypatch):
    members = {
        "stack.xml": stack_xml(1024, 1024, '<layer src="data/big.png"/>'),
        "data/big.png": png_bytes(np.zeros((1024, 1024, 4), np.uint8)),
    }
    assert len(load_ora(make_ora(members), OraLimits(memory_budget=32 << 20)).layers) == 1
    guard = _NoDecode(monkeypatch)
    # one decode is 4 MiB; 16 occurrences are 64 MiB, over a 32 MiB budget
    members["stack.xml"] = stack_xml(1024, 1024, '<layer src="data/big.png"/>' * 16)
    scene.refuse("reuse.ora", make_ora(members), "memory", limits=OraLimits(memory_budget=32 << 20))
    assert guard.calls == 0


@pytest.mark.parametrize(
    "dtype", ["V2000000000", "(1000,1000,500)f8", "S1000000000", "object", "complex128", "U9"]
)
def test_array_with_a_hostile_dtype_is_never_allocated(dtype):
    import tracemalloc

    members = _valid_members()
    members["canvasai/document.json"] = _extras(
        '{"a": {"$array": [[1, 2], [3, 4]], "dtype": "' + dtype + '"}}'
    )
    data = make_ora(members)
    warnings: list[str] = []
    tracemalloc.start()
    try:
        doc = load_ora(data, warnings=warnings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
    assert doc.metadata == {"a": None}
    assert any("dtype" in w for w in warnings)


def test_big_declared_array_is_charged_to_the_budget(scene):
    row = "[" + ",".join("0" for _ in range(1000)) + "]"
    arr = "[" + ",".join(row for _ in range(200)) + "]"  # 200 x 1000 float64 = 1.6 MB
    members = _valid_members()
    members["canvasai/document.json"] = _extras(
        '{"a": {"$array": ' + arr + ', "dtype": "float64"}, '
        '"b": {"$array": [[1, 2], [3]], "dtype": "int32"}}'
    )
    scene.refuse("arr.ora", make_ora(members), "memory", limits=OraLimits(memory_budget=4 << 20))
    warnings: list[str] = []
    doc = load_ora(make_ora(members), OraLimits(memory_budget=64 << 20), warnings=warnings)
    assert doc.metadata["a"].shape == (200, 1000) and doc.metadata["a"].dtype == np.float64
    assert doc.metadata["b"] is None and any("ragged" in w for w in warnings)


def test_broken_extra_png_is_dropped_with_a_warning_but_still_counted(scene, monkeypatch):
    members = _valid_members()
    cut = png_bytes(np.random.default_rng(2).integers(0, 255, (256, 256, 4), dtype=np.uint8))
    members["canvasai/blobs/cut.png"] = cut[: len(cut) // 2]
    members["canvasai/document.json"] = _extras(
        '{"t": {"$png": "canvasai/blobs/cut.png", "shape": [256, 256, 4]}}'
    )
    data = make_ora(members)
    # counted: 256 x 256 x 4 (and its working copies) do not fit 512 KiB
    scene.refuse("cut.ora", data, "memory", limits=OraLimits(memory_budget=512 << 10))
    warnings: list[str] = []
    doc = load_ora(data, warnings=warnings)
    assert doc.metadata == {"t": None}
    assert any("cut.png" in w and "truncated" in w for w in warnings)


def test_refused_ora_leaves_the_open_document_untouched(scene):
    layers = "".join('<layer src="data/a.png"/>' for _ in range(3))
    members = {"stack.xml": stack_xml(8, 8, layers), "data/a.png": png_bytes(red_square())}
    scene.refuse("tight.ora", make_ora(members), "memory", limits=OraLimits(memory_budget=700))


def test_default_budget_comes_from_available_memory(monkeypatch):
    from canvasai.formats import budget

    monkeypatch.setattr(budget, "available_memory", lambda: 8 << 30)
    assert budget.default_budget_bytes() == 6 << 30
    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 20)
    assert budget.default_budget_bytes() == budget.BUDGET_FLOOR
    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 50)
    assert budget.default_budget_bytes() == budget.BUDGET_CEILING
    assert budget.available_memory.__module__  # real function still importable


# -- issue 8: XML --------------------------------------------------------------------------
def test_utf16_stack_xml_with_a_dtd_is_refused(scene):
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE lol [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        '<image w="8" h="8"><stack><layer name="&c;" src="a.png"/></stack></image>'
    ).encode("utf-16")
    assert b"<!DOCTYPE" not in xml
    members = {"stack.xml": xml, "a.png": png_bytes(red_square())}
    scene.refuse("utf16.ora", make_ora(members), "DTD")


def test_long_layer_names_are_cut_and_long_attributes_refused(scene):
    members = {
        "stack.xml": stack_xml(8, 8, f'<layer name="{"n" * 5000}" src="a.png"/>'),
        "a.png": png_bytes(red_square()),
    }
    doc = load_ora(make_ora(members))
    assert doc.layers[0].name == "n" * 1000
    members["stack.xml"] = stack_xml(8, 8, f'<layer composite-op="{"x" * 5000}" src="a.png"/>')
    scene.refuse("attr.ora", make_ora(members), "composite-op attribute")


# -- issue 8: archive guard --------------------------------------------------------------
def test_duplicate_member_names_are_refused(scene):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", b"image/openraster")
        zf.writestr("stack.xml", stack_xml(8, 8, '<layer src="a.png"/>'))
        zf.writestr("./stack.xml", stack_xml(8, 8, '<layer src="evil.png"/>'))
        zf.writestr("a.png", png_bytes(red_square()))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("a.png", png_bytes(red_square()))
    scene.refuse("dup.ora", buf.getvalue(), "two members")


def test_member_claiming_more_than_deflate_can_is_refused(scene):
    data = bytearray(make_ora(_valid_members()))
    name = b"data/a.png"
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        if data[pos + 46 : pos + 46 + len(name)] == name:
            struct.pack_into("<I", data, pos + 24, 900 << 20)  # uncompressed size: 900 MiB
        pos = data.find(b"PK\x01\x02", pos + 4)
    scene.refuse("ratio.ora", bytes(data), "more than deflate can|zip bomb")


def test_archive_and_png_codec_modules_are_separate():
    from canvasai.formats import archive, ora_extras, png_codec

    assert ora_extras.encode_png is png_codec.encode_png
    assert archive.safe_member_name("data/a.png")
    assert not archive.safe_member_name("data/\x07a.png")
