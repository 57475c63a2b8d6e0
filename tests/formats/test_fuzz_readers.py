"""Bounded fuzzing of the .ora and image readers (hypothesis, fixed seed).

Whatever bytes come in, a reader either returns a result or raises
FileFormatError; any other exception is a bug. Each test counts the cases it
tried and prints the count (run with -s to see it).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from canvasai.core.errors import FileFormatError
from canvasai.document.document import Document
from canvasai.formats.image_io import decode_image
from canvasai.formats.ora import OraLimits, load_ora, ora_bytes
from tests.formats.files_helpers import make_ora, png_bytes, red_square

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
LIMITS = OraLimits(
    max_member_bytes=8 << 20,
    max_total_bytes=16 << 20,
    max_layer_pixels=1 << 20,
    max_total_pixels=4 << 20,
)


def _seed_ora() -> bytes:
    doc = Document(40, 30)
    px = np.zeros((10, 12, 4), np.uint8)
    px[..., 1] = 200
    px[..., 3] = 255
    doc.write_pixels(doc.layers[1], 3, 4, px)
    doc.layers[1].generation = {"prompt": "p", "thumb": np.zeros((3, 3, 3), np.uint8)}
    doc.mask.write(0, 0, np.full((5, 5), 255, np.uint8))
    return ora_bytes(doc)


SEED_ORA = _seed_ora()
SEED_PNG = png_bytes(red_square(16))
counts: dict[str, int] = {}


def _count(name: str) -> None:
    counts[name] = counts.get(name, 0) + 1


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, val in edits:
        buf[pos % len(buf)] = val
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    return bytes(buf)


def _load_or_refuse(data: bytes) -> None:
    try:
        doc = load_ora(data, limits=LIMITS)
    except FileFormatError as exc:
        assert str(exc)
        return
    assert doc.width > 0 and doc.height > 0


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12)


@FUZZ
@given(edits=EDITS, cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_fuzz_ora_bytes(edits, cut):
    _count("ora_bytes")
    _load_or_refuse(_mutate(SEED_ORA, edits, cut))


_attr = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_num = st.one_of(
    st.integers(-(1 << 40), 1 << 40).map(str), st.floats(allow_nan=True).map(str), _attr
)


@st.composite
def _stack_xml(draw) -> bytes:
    def layer() -> str:
        attrs = {
            k: draw(_num) for k in draw(st.sets(st.sampled_from(["x", "y", "opacity"]), max_size=3))
        }
        attrs["src"] = draw(st.sampled_from(["a.png", "b.png", "missing.png", "../a.png", ""]))
        if draw(st.booleans()):
            attrs["composite-op"] = draw(
                st.sampled_from(["svg:multiply", "krita:x", "", "svg:src-over"])
            )
        if draw(st.booleans()):
            attrs["visibility"] = draw(st.sampled_from(["hidden", "visible", "maybe"]))
        body = " ".join(f'{k}="{_esc(v)}"' for k, v in attrs.items())
        return f"<layer {body}/>"

    def stack(depth: int) -> str:
        parts = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["layer", "layer", "stack", "junk"]))
            if kind == "stack" and depth < 3:
                parts.append(f"<stack>{stack(depth + 1)}</stack>")
            elif kind == "junk":
                parts.append("<text>hi</text>")
            else:
                parts.append(layer())
        return "".join(parts)

    w, h = draw(_num), draw(_num)
    return f'<image w="{_esc(w)}" h="{_esc(h)}"><stack>{stack(0)}</stack></image>'.encode()


def _esc(v: str) -> str:
    return v.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


@FUZZ
@given(xml=_stack_xml(), png_a=st.sampled_from([SEED_PNG, SEED_PNG[:30], b"junk", b""]))
def test_fuzz_ora_structure(xml, png_a):
    _count("ora_structure")
    _load_or_refuse(make_ora({"stack.xml": xml, "a.png": png_a, "b.png": SEED_PNG}))


@FUZZ
@given(names=st.lists(st.text(max_size=20), min_size=1, max_size=4))
def test_fuzz_member_names(names):
    _count("member_names")
    members = {
        "stack.xml": b'<image w="4" h="4"><stack><layer src="a.png"/></stack></image>',
        "a.png": SEED_PNG,
    }
    for n in names:
        members[n or "x"] = b"data"
    buf = io.BytesIO()
    try:
        with zipfile.ZipFile(buf, "w") as zf:
            for n, d in members.items():
                zf.writestr(n, d)
    except (ValueError, IndexError, UnicodeEncodeError):
        assume(False)  # zipfile itself cannot write that name
    _load_or_refuse(buf.getvalue())


@FUZZ
@given(
    seed=st.sampled_from(["png", "jpeg", "webp", "bmp", "tiff"]),
    edits=EDITS,
    cut=st.one_of(st.none(), st.integers(0, 4096)),
)
def test_fuzz_image_decoder(seed, edits, cut):
    _count("images")
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(np.tile(np.arange(24, dtype=np.uint8)[None, :, None], (20, 1, 3)) * 10)
    img.save(buf, seed.upper())
    data = _mutate(buf.getvalue(), edits, cut)
    try:
        out = decode_image(data, "fuzz", max_pixels=1 << 22)
    except FileFormatError as exc:
        assert str(exc)
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 4


_any_text = st.text(max_size=30)
_meta = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        _any_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_any_text, children, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(names=st.lists(_any_text, min_size=1, max_size=3), meta=_meta, prompt=_any_text)
def test_fuzz_save_load_round_trip(names, meta, prompt):
    """Any layer names, prompts and metadata save, load back, and export."""
    from canvasai.document.layer import Layer
    from canvasai.formats.export import ExportOptions, Provenance, encode_image, format_parameters
    from canvasai.formats.ora import xml_safe

    _count("round_trip")
    doc = Document(8, 8, background=None)
    doc.layers = [Layer(n) for n in names]
    doc.layers[0].generation = {"prompt": prompt, "seed": 1}
    doc.metadata = {"generation_history": [meta]}
    back = load_ora(ora_bytes(doc))
    assert [la.name for la in back.layers] == [xml_safe(n) for n in names]
    assert back.layers[0].generation["prompt"] == prompt
    assert back.metadata["generation_history"] == [meta]
    params = format_parameters(doc.layers[0].generation)
    for fmt in ("png", "jpeg"):
        encode_image(np.zeros((2, 2, 4), np.uint8), ExportOptions(fmt), Provenance(params, "x"))


def test_fuzz_case_count_report():
    """Runs last in this module: prints and checks how many cases were tried."""
    total = sum(counts.values())
    print(f"\nFUZZ cases tried: {total} {counts}")
    assert total == 0 or total >= 5 * 250
