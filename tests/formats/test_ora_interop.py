"""Interoperability with real OpenRaster clients (Krita 5.1, MyPaint 2.0).

- `krita5_written.ora` (Krita 5.1.5) and `mypaint2_written.ora` (MyPaint 2.0.1, with
  its own paper background layer, tile-aligned offsets and strokemaps) were written
  by those programs from a CanvasAI file with multiply/screen layers at partial
  opacity and a hidden layer; CanvasAI must flatten each like the program's own
  mergedimage.png.
- Opt-in, slow: with CANVASAI_KRITA_TEST=1 (krita + xvfb-run installed) or
  CANVASAI_MYPAINT_TEST=1 (Debian's mypaint package), a CanvasAI file is flattened
  by that program and compared with CanvasAI's composite.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from canvasai.document.blend import BlendMode
from canvasai.formats.ora import load_ora, ora_bytes, save_ora
from tests.formats.files_helpers import flat, painted_document

DATA = Path(__file__).parent / "data"
NAMES = ["Background", "Layer 1", "Shade", "screen", "hidden"]


@pytest.mark.parametrize(
    "name,names",
    [
        ("krita5_written.ora", NAMES),
        ("mypaint2_written.ora", ["background", *NAMES]),
    ],
)
def test_files_written_by_other_programs_flatten_like_their_merged_image(name, names):
    doc = load_ora(DATA / name)
    assert [la.name for la in doc.layers] == names
    shade = doc.layers[names.index("Shade")]
    assert shade.blend_mode is BlendMode.MULTIPLY and not doc.layers[-1].visible
    with zipfile.ZipFile(DATA / name) as zf:
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGBA"))
    assert np.abs(flat(doc).astype(int) - merged.astype(int)).max() <= 1


def test_files_tell_mypaint_to_blend_in_srgb():
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(io.BytesIO(ora_bytes(painted_document()))) as zf:
        root = ET.fromstring(zf.read("stack.xml"))
    assert root.get("{http://mypaint.org/ns/openraster}eotf") == "1.0"


def _interop_doc():
    doc = painted_document(256, 192)
    layer = doc.add_layer("screen")
    px = np.zeros((100, 100, 4), np.uint8)
    px[..., 0], px[..., 1], px[..., 3] = 200, 90, 180
    doc.write_pixels(layer, 20, 20, px)
    doc.set_layer_properties(layer, blend_mode=BlendMode.SCREEN, opacity=0.7)
    return doc


MYPAINT_FLATTEN = """
import sys, zipfile, xml.etree.ElementTree as ET
sys.path.insert(0, "/usr/lib/mypaint")
import lib.document, lib.eotf
root = ET.fromstring(zipfile.ZipFile(sys.argv[1]).read("stack.xml"))
eotf = root.get("{http://mypaint.org/ns/openraster}eotf")
lib.eotf.set_eotf(float(eotf) if eotf else 2.2)  # as MyPaint's GUI compat handler does
doc = lib.document.Document()
doc.load(sys.argv[1])
doc.save(sys.argv[2])
"""


@pytest.mark.skipif(
    os.environ.get("CANVASAI_MYPAINT_TEST") != "1"
    or not Path("/usr/lib/mypaint/lib/document.py").exists()
    or not shutil.which("xvfb-run"),
    reason="set CANVASAI_MYPAINT_TEST=1 with Debian's mypaint and xvfb-run installed",
)
def test_mypaint_flattens_canvasai_file_the_same(tmp_path):
    doc = _interop_doc()
    save_ora(doc, tmp_path / "in.ora")
    (tmp_path / "flatten.py").write_text(MYPAINT_FLATTEN)
    subprocess.run(
        [
            "xvfb-run",
            "-a",
            "/usr/bin/python3",
            str(tmp_path / "flatten.py"),
            str(tmp_path / "in.ora"),
            str(tmp_path / "out.png"),
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=True,
    )
    mypaint = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA")).astype(int)
    assert np.abs(mypaint - flat(doc).astype(int)).max() <= 1


@pytest.mark.skipif(
    os.environ.get("CANVASAI_KRITA_TEST") != "1"
    or not shutil.which("krita")
    or not shutil.which("xvfb-run"),
    reason="set CANVASAI_KRITA_TEST=1 with krita and xvfb-run installed",
)
def test_krita_flattens_canvasai_file_the_same(tmp_path):
    doc = _interop_doc()
    save_ora(doc, tmp_path / "in.ora")
    subprocess.run(
        [
            "xvfb-run",
            "-a",
            "krita",
            str(tmp_path / "in.ora"),
            "--export",
            "--export-filename",
            str(tmp_path / "out.png"),
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    krita = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA")).astype(int)
    assert np.abs(krita - flat(doc).astype(int)).max() <= 1
