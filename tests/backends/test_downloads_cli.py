"""`canvasai models --installs / --catalog / --download` against fake installs and a loopback hub."""

from __future__ import annotations

import json

from canvasai.cli import models as cli
from tests.backends.test_downloads import hub, online  # noqa: F401 - fixtures
from tests.backends.test_installs import comfyui


def test_installs_lists_a_folder_given(tmp_path, capsys):
    root = comfyui(tmp_path / "ComfyUI")
    assert cli.main(["--installs", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["kind"] == "comfyui" and rows[0]["models_dir"] == str(root / "models")


def test_catalog_lists_repositories_and_licences(capsys):
    assert cli.main(["--catalog"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/FLUX.1-dev" in out and "non-commercial" in out


def test_download_needs_the_licence_accepted(capsys):
    assert cli.main(["--download", "flux1-dev"]) == 2
    assert "--accept-licence" in capsys.readouterr().err


def test_download_a_repository(hub, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert cli.main(["--download", "tiny/taesd"]) == 0
    captured = capsys.readouterr()
    assert "models--tiny--taesd" in captured.out and "of" in captured.err
    assert cli.main(["--download", "tiny/bad"]) == 1
    assert "does not match" in capsys.readouterr().err
