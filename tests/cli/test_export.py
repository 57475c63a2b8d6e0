"""`canvasai export` on the command line (run through the module's own entry point)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from canvasai.cli.export import main
from canvasai.formats.ora import save_ora
from tests.formats.files_helpers import painted_document


def test_export_flattened_and_layers(tmp_path, capsys):
    doc = painted_document()
    doc.layers[2].generation = {"prompt": "fog", "seed": 9, "steps": 4}
    project = tmp_path / "p.ora"
    save_ora(doc, project)
    rc = main(
        [
            "export",
            str(project),
            "-o",
            str(tmp_path / "out.jpg"),
            "--quality",
            "80",
            "--layers",
            str(tmp_path / "layers"),
            "--scale",
            "0.5",
        ]
    )
    assert rc == 0
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.size == (80, 60) and img.format == "JPEG"
    assert len(list((tmp_path / "layers").glob("*.png"))) == 3
    assert "out.jpg" in capsys.readouterr().out


def test_format_option_and_no_metadata(tmp_path):
    doc = painted_document()
    doc.layers[2].generation = {"prompt": "fog"}
    project = tmp_path / "p.ora"
    save_ora(doc, project)
    assert (
        main(
            [
                "export",
                str(project),
                "-o",
                str(tmp_path / "out"),
                "--format",
                "png",
                "--no-metadata",
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "out.png") as img:
        assert "parameters" not in img.info


def test_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.ora"
    bad.write_bytes(b"nope")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "canvasai.cli.export",
            "export",
            str(bad),
            "-o",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2
    assert "bad.ora" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_format_contradicting_the_output_suffix_exits_2(tmp_path, capsys):
    project = tmp_path / "p.ora"
    save_ora(painted_document(), project)
    rc = main(["export", str(project), "-o", str(tmp_path / "x.png"), "--format", "tiff"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "x.png" in err and "TIFF" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_layers_with_long_non_ascii_names_all_export(tmp_path):
    doc = painted_document()
    for layer in doc.layers:
        layer.name = "ñ漢" * 100  # 200 characters, 500 bytes
    project = tmp_path / "p.ora"
    save_ora(doc, project)
    assert main(["export", str(project), "--layers", str(tmp_path / "L")]) == 0
    files = sorted((tmp_path / "L").iterdir())
    assert len(files) == len(doc.layers)
    assert all(len(f.name.encode()) <= 200 for f in files)
