"""The Content Credentials panel in the real window: opening a signed, an unsigned and a
hostile image, then painting and exporting (the chain holds, signing off the GUI thread)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from canvasai.core import settings
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.formats import credentials as cr
from canvasai.formats.credentials_identity import self_issued_identity
from canvasai.formats.export import export_flattened
from canvasai.ui.main_window import MainWindow
from tests.formats.test_credentials import _cabx, _png_with_chunk


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CANVASAI_AUTOSAVE_S", "3600")
    settings.reset(settings.MemoryStore())
    w = MainWindow()
    qtbot.addWidget(w)
    yield w
    w.files.runner.wait(10_000)


def signed_png(tmp_path) -> tuple:
    doc = Document(40, 30)
    layer = Layer("Generated", generation={"task": "txt2img", "model": "dream", "seed": 1,
                                           "time": 5.0, "backend": "diffusers"})
    layer.surface.write(0, 0, np.full((30, 40, 4), (20, 90, 200, 255), np.uint8))
    doc.layers.append(layer)
    path = tmp_path / "signed.png"
    ident = self_issued_identity(tmp_path / "painter", "Painter")
    export_flattened(doc, path, credentials=cr.ContentCredentials(ident))
    return path, ident


def open_and_wait(window, qtbot, path):
    with qtbot.waitSignal(window.files.credentials_read, timeout=10_000) as sig:
        window.files.open_path(str(path))
    return sig.args


def test_signed_image_shows_its_credentials_then_the_chain_holds(window, qtbot, tmp_path):
    path, _ident = signed_png(tmp_path)
    creds, name = open_and_wait(window, qtbot, path)
    panel = window.credentials_panel
    assert name == "signed.png" and creds.state == "valid"
    assert panel.credentials is creds
    assert "Valid" in panel.state_label.text()
    body = panel.body.toPlainText()
    assert "Painter" in body and "created" in body and "dream" in body and "self" in body
    panels = next(a.menu() for a in window.menu_view.actions() if a.menu() is not None)
    assert window.docks["credentials"].toggleViewAction() in panels.actions()
    assert "Content Credentials: valid" in window.statusBar().currentMessage()

    doc = window.document
    layer = doc.add_layer("Paint")
    doc.write_pixels(layer, 2, 2, np.full((6, 6, 4), (255, 0, 0, 255), np.uint8))
    out = tmp_path / "edited.jpg"
    with qtbot.waitSignal(window.files.exported, timeout=10_000):
        window.files.export_to("flattened", str(out))
    assert window.files.last_credentials.outcomes[0].signed
    assert "signed as CanvasAI user (self-issued" in window.statusBar().currentMessage()
    got = cr.read_credentials(out.read_bytes())
    assert got.state == "valid"
    assert [a.action for a in got.actions] == ["c2pa.opened", "c2pa.edited"]
    assert got.ingredients[0].title == "signed.png" and got.ingredients[0].has_manifest

    window.set_document(Document(10, 10))  # another document: the panel forgets
    assert panel.credentials is None and "No image" in panel.state_label.text()


def test_unsigned_and_hostile_images_open_and_say_so(window, qtbot, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGBA", (12, 8), (1, 2, 3, 255)).save(plain)
    creds, _name = open_and_wait(window, qtbot, plain)
    assert creds is None and "no Content Credentials" in window.credentials_panel.state_label.text()

    path, _ident = signed_png(tmp_path)
    data = path.read_bytes()
    hostile = tmp_path / "hostile.png"  # a well-formed PNG whose manifest is cut in half
    manifest = _cabx(data)
    hostile.write_bytes(_png_with_chunk(data, b"caBX", manifest[: len(manifest) // 2], b"caBX"))
    creds, _name = open_and_wait(window, qtbot, hostile)
    assert window.document is not None and window.document.width == 40
    assert creds is not None and creds.state in ("unreadable", "invalid", "tampered")
    assert window.credentials_panel.state_label.text().split(":")[0] in (
        "Unreadable", "Invalid", "Tampered")


def test_export_with_a_broken_identity_goes_out_unsigned_and_says_why(window, qtbot, tmp_path):
    settings.update(**{"credentials/cert_chain": str(tmp_path / "nope.pem"),
                       "credentials/private_key": str(tmp_path / "nope.key")})
    window.set_document(Document(16, 16))
    out = tmp_path / "x.png"
    with qtbot.waitSignal(window.files.exported, timeout=10_000):
        window.files.export_to("flattened", str(out))
    assert out.exists() and cr.read_credentials(out.read_bytes()) is None
    msg = window.statusBar().currentMessage()
    assert "not signed" in msg and "nope.pem" in msg
