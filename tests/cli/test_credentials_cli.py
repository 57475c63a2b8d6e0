"""`canvasai export` signs; `canvasai credentials FILE` prints credentials and their state."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from canvasai.cli.entry import is_command, main
from canvasai.formats.credentials import read_credentials
from canvasai.formats.ora import save_ora
from tests.formats.files_helpers import painted_document


def _project(tmp_path):
    doc = painted_document()
    doc.layers[2].generation = {"prompt": "fog", "seed": 9, "steps": 4, "task": "inpaint",
                                "model": "not-installed", "time": 10.0}
    project = tmp_path / "p.ora"
    save_ora(doc, project)
    return project


def test_export_signs_and_credentials_prints_them(tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["export", str(_project(tmp_path)), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Content Credentials: signed as CanvasAI user (self-issued" in err

    assert is_command(["credentials", str(out)])
    assert main(["credentials", str(out)]) == 0
    text = capsys.readouterr().out
    assert "State: Valid" in text and "self-issued" in text
    assert "inpaint" in text and "not-installed" in text and "compositeWithTrained" in text

    assert main(["credentials", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "valid" and data["signer"] == "CanvasAI user"
    assert [a["action"] for a in data["actions"]][-1] == "c2pa.edited"


def test_tampered_unsigned_and_unreadable_files_have_their_own_exit_codes(tmp_path, capsys):
    out = tmp_path / "out.jpg"
    assert main(["export", str(_project(tmp_path)), "-o", str(out)]) == 0
    data = bytearray(out.read_bytes())
    data[-100] ^= 1
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["credentials", str(bad)]) == 1
    assert "Tampered" in capsys.readouterr().out

    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(plain)
    assert main(["credentials", str(plain)]) == 3
    assert "no Content Credentials" in capsys.readouterr().out
    assert main(["credentials", str(tmp_path / "missing.png")]) == 2


def test_export_without_credentials_and_with_a_broken_identity(tmp_path, capsys, monkeypatch):
    project = _project(tmp_path)
    out = tmp_path / "a.png"
    assert main(["export", str(project), "-o", str(out), "--no-credentials"]) == 0
    assert read_credentials(out.read_bytes()) is None

    from canvasai.core import settings

    settings.update(**{"credentials/cert_chain": str(tmp_path / "none.pem"),
                       "credentials/private_key": str(tmp_path / "none.key")})
    capsys.readouterr()
    assert main(["export", str(project), "-o", str(out)]) == 0  # still exported
    err = capsys.readouterr().err
    assert "not signed" in err and "none.pem" in err
    assert read_credentials(out.read_bytes()) is None


def test_exporting_an_image_keeps_it_as_the_parent(tmp_path, capsys):
    first = tmp_path / "first.png"
    assert main(["export", str(_project(tmp_path)), "-o", str(first)]) == 0
    second = tmp_path / "second.webp"
    assert main(["export", str(first), "-o", str(second)]) == 0
    got = read_credentials(second.read_bytes())
    assert got.state == "valid" and got.actions[0].action == "c2pa.opened"
    assert got.ingredients[0].title == "first.png" and got.ingredients[0].has_manifest


def test_generating_commands_sign_their_output_with_the_input_as_parent(tmp_path, capsys):
    src = tmp_path / "in.png"
    img = np.zeros((32, 48, 3), np.uint8)
    img[..., 0] = 120
    img[8:16, 8:16] = (255, 0, 255)
    Image.fromarray(img).save(src)
    mask = np.zeros((32, 48), np.uint8)
    mask[6:18, 6:18] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.jpg"
    assert main(["inpaint", str(src), "--mask", str(tmp_path / "mask.png"), "-o", str(out)]) == 0
    assert "out.jpg: signed by" in capsys.readouterr().err
    got = read_credentials(out.read_bytes())
    assert got.state == "valid"
    assert [a.action for a in got.actions] == ["c2pa.opened", "c2pa.edited"]
    assert got.actions[1].source_type == "algorithmicMedia"  # the classic backend: no AI model
    assert got.ingredients[0].title == "in.png"

    bmp = tmp_path / "up.bmp"
    assert main(["upscale", str(src), "--scale", "2", "-o", str(bmp)]) == 0
    assert "cannot carry Content Credentials" in capsys.readouterr().err
    plain = tmp_path / "plain.png"
    assert main(["upscale", str(src), "--scale", "2", "-o", str(plain), "--no-credentials"]) == 0
    assert read_credentials(plain.read_bytes()) is None
