"""The architecture's import rules (DESIGN.md, "Layers of the code"), checked in fresh interpreters.

- document/ and tools/ import neither Qt nor torch;
- ui/, generation/ and the app's entry points do not pull torch/diffusers in at import
  (the window must appear before any model library loads; the worker imports them lazily).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import canvasai

ROOT = Path(canvasai.__file__).resolve().parent
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")
HEAVY = ("torch", "diffusers", "transformers", "accelerate")


def modules_of(package: str) -> list[str]:
    path = ROOT / package.split(".", 1)[1].replace(".", "/")
    if not path.is_dir():
        return []
    return [package] + [f"{package}.{m.name}" for m in pkgutil.walk_packages([str(path)])]


def imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("package", ["canvasai.core", "canvasai.document", "canvasai.tools"])
def test_model_packages_import_neither_qt_nor_torch(package):
    mods = modules_of(package)
    assert mods, package
    loaded = imported_after(mods)
    assert not loaded & set(QT + HEAVY), f"{package} pulled in {sorted(loaded & set(QT + HEAVY))}"


@pytest.mark.parametrize("package", ["canvasai.ui", "canvasai.generation"])
def test_gui_and_service_packages_do_not_import_torch(package):
    mods = modules_of(package)
    if not mods:
        pytest.skip(f"{package} has no modules yet")
    loaded = imported_after(mods)
    assert not loaded & set(HEAVY), f"{package} pulled in {sorted(loaded & set(HEAVY))}"


def test_entry_points_and_backend_front_doors_are_lazy():
    mods = ["canvasai.cli", "canvasai.app", "canvasai.backends.router", "canvasai.backends.models"]
    mods = [m for m in mods if (ROOT / (m.split(".", 1)[1].replace(".", "/") + ".py")).exists()]
    loaded = imported_after(mods)
    assert not loaded & set(HEAVY), f"pulled in {sorted(loaded & set(HEAVY))}"


def test_ui_is_the_only_package_importing_qtwidgets():
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("ui/") or rel == "app.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "QtWidgets" in text or "QtGui" in text:
            offenders.append(rel)
    assert not offenders, offenders
