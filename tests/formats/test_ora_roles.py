"""Layer roles are saved in the .ora and come back; files of older versions still open."""

import json
import zipfile

from canvasai.document.document import Document
from canvasai.document.layer import ControlRole, ReferenceRole, RegionRole
from canvasai.formats.ora import load_ora, save_ora


def _rewrite_extras(path, out, change):
    """A copy of the .ora at `path` with its CanvasAI extras JSON changed by `change`."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".json") and info.filename.startswith("canvasai/"):
                extras = json.loads(data)
                change(extras)
                data = json.dumps(extras).encode()
            dst.writestr(info, data)


def test_roles_round_trip_through_the_file(tmp_path):
    doc = Document(32, 24)
    roles = [ControlRole(kind="depth", strength=0.8, start=0.0, end=0.6, preprocess=False),
             ReferenceRole(kind="style", strength=1.1), RegionRole("a fox", "dog")]
    for role in roles:
        doc.add_layer().role = role
    save_ora(doc, tmp_path / "roles.ora")
    back = load_ora(tmp_path / "roles.ora")
    assert [la.role for la in back.layers] == [la.role for la in doc.layers]
    assert back.layers[0].role is None


def test_an_old_file_with_the_sketch_flag_opens_as_a_scribble_control_layer(tmp_path):
    doc = Document(32, 24)
    doc.active_layer.role = ControlRole(kind="scribble")
    save_ora(doc, tmp_path / "new.ora")

    def old(extras):  # what CanvasAI wrote before roles: only the flag
        for entry in extras["layers"]:
            entry.pop("role", None)

    _rewrite_extras(tmp_path / "new.ora", tmp_path / "old.ora", old)
    back = load_ora(tmp_path / "old.ora")
    assert back.layers[1].role == ControlRole(kind="scribble") and back.layers[1].is_sketch
    assert back.layers[0].role is None


def test_a_broken_role_is_left_out_with_a_warning(tmp_path):
    doc = Document(32, 24)
    doc.active_layer.role = RegionRole("a fox")
    save_ora(doc, tmp_path / "ok.ora")

    def broken(extras):
        extras["layers"][1]["role"] = {"type": "region", "prompt": 7}

    _rewrite_extras(tmp_path / "ok.ora", tmp_path / "bad.ora", broken)
    warnings: list[str] = []
    back = load_ora(tmp_path / "bad.ora", warnings=warnings)
    assert back.layers[1].role is None and any("role" in w for w in warnings)
