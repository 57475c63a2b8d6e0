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
