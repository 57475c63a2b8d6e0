"""The architecture's import rules (DESIGN.md, "Layers of the code").

- imports only point down the layer list (checked on the source, lazy imports included);
- core/, document/, formats/ and tools/ import neither Qt nor torch (fresh interpreters);
- ui/, generation/ and the app's entry points do not pull torch/diffusers in at import
  (the window must appear before any model library loads; the worker imports them lazily).
"""

from __future__ import annotations

import ast
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


#: Top to bottom: a module may import its own layer and the layers below it, never above.
LAYERS = ["app", "cli", "ui", "generation", "backends", "formats", "tools", "document", "core"]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "canvasai" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every canvasai module `path` imports (top level, in functions, under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "canvasai." + ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return [(line, m) for line, m in out if m.startswith("canvasai.")]


def test_imports_only_point_down_the_layer_list():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        source = layer_of("canvasai." + ".".join(rel.with_suffix("").parts))
        if source is None:
            continue
        for line, target in imports_of(path):
            dest = layer_of(target)
            if dest is not None and LAYERS.index(dest) < LAYERS.index(source):
                upward.append(f"{rel}:{line} ({source}) imports {target} ({dest})")
    assert not upward, "\n".join(upward)


def test_the_layer_check_sees_lazy_and_relative_imports(tmp_path):
    sample = ROOT / "backends" / "_boundary_sample.py"
    sample.write_text("def f():\n    from canvasai.generation import runner\n"
                      "from . import api\n", encoding="utf-8")
    try:
        found = [m for _, m in imports_of(sample)]
    finally:
        sample.unlink()
    assert "canvasai.generation" in found and "canvasai.backends.api" in found


@pytest.mark.parametrize(
    "package", ["canvasai.core", "canvasai.document", "canvasai.formats", "canvasai.tools"])
def test_model_packages_import_neither_qt_nor_torch(package):
    mods = modules_of(package)
    assert mods, package
    loaded = imported_after(mods)
    assert not loaded & set(QT + HEAVY), f"{package} pulled in {sorted(loaded & set(QT + HEAVY))}"


@pytest.mark.parametrize("package", ["canvasai.ui", "canvasai.generation"])
def test_gui_and_service_packages_do_not_import_torch(package):
    mods = modules_of(package)
    assert mods, package
    loaded = imported_after(mods)
    assert not loaded & set(HEAVY), f"{package} pulled in {sorted(loaded & set(HEAVY))}"


def test_entry_points_and_backend_front_doors_are_lazy():
    mods = ["canvasai.cli", "canvasai.cli.entry", "canvasai.app", "canvasai.backends.router",
            "canvasai.backends.models", "canvasai.backends.api", "canvasai.backends.masking"]
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
