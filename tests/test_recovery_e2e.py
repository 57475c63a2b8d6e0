"""Autosave and recovery for real: paint in the app, SIGKILL it, start again, restore.

Runs `python -m canvasai` twice in subprocesses (offscreen), driving the live
window through the CANVASAI_TEST_SCRIPT hook of canvasai/app.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_HOOK_READY = (ROOT / "canvasai" / "app.py").exists() and "CANVASAI_TEST_SCRIPT" in (
    ROOT / "canvasai" / "app.py"
).read_text(encoding="utf-8")

PAINT = r"""
import json, os
import numpy as np
from canvasai.core.geometry import Rect
from canvasai.document.compositing import composite_layers

out = os.environ["E2E_OUT"]
doc = window.document
layer = doc.active_layer
rng = np.random.default_rng(7)
for i in range(5):  # five "strokes", each one undo step
    px = rng.integers(0, 256, (40 + 10 * i, 90, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc.write_pixels(layer, 50 + 120 * i, 60 + 30 * i, px, "Brush")
second = doc.add_layer("Glaze")
glaze = np.zeros((200, 300, 4), np.uint8)
glaze[..., 2] = 200
glaze[..., 3] = 100
doc.write_pixels(second, 400, 300, glaze, "Brush")
rect = Rect(10, 10, 64, 48)
before = doc.mask.take_tiles(doc.mask.keys_in(rect))
doc.mask.write(10, 10, np.full((48, 64), 255, np.uint8))
doc.push_tiles_command("mask", before, rect, "Mask brush")
doc.metadata["generation_history"] = [{"prompt": "a red barn", "seed": 11}]
np.save(os.path.join(out, "expected.npy"), composite_layers(doc.layers, doc.rect))
np.save(os.path.join(out, "expected_mask.npy"), doc.mask.read(doc.rect))
target = doc.history.revision

def on_autosave(revision):
    if revision >= target:
        with open(os.path.join(out, "autosaved.json"), "w") as fh:
            json.dump({"revision": revision, "pid": os.getpid()}, fh)

window.files.autosaved.connect(on_autosave)
"""

RESTORE = r"""
import json, os
import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox
from canvasai.document.compositing import composite_layers

out = os.environ["E2E_OUT"]
state = {"tries": 0}

def finish(doc):
    np.save(os.path.join(out, "restored.npy"), composite_layers(doc.layers, doc.rect))
    np.save(os.path.join(out, "restored_mask.npy"), doc.mask.read(doc.rect))
    with open(os.path.join(out, "restored.json"), "w") as fh:
        json.dump({"offered": state["text"], "layers": [la.name for la in doc.layers],
                   "metadata": doc.metadata.get("generation_history"),
                   "modified": not doc.history.is_clean}, fh)
    window.close()  # a normal close: must remove the recovery file
    app.quit()

def look():
    box = window.findChild(QMessageBox, "recoveryDialog")
    if box is None or not box.isVisible():
        state["tries"] += 1
        if state["tries"] > 100:
            with open(os.path.join(out, "restored.json"), "w") as fh:
                json.dump({"offered": None}, fh)
            app.quit()
            return
        QTimer.singleShot(50, look)
        return
    state["text"] = box.text()
    window.files.opened.connect(finish)
    box.findChild(type(box.defaultButton()), "restoreButton").click()

look()
"""


def _start(tmp: Path, script: str, name: str) -> subprocess.Popen:
    script_path = tmp / f"{name}.py"
    script_path.write_text(script, encoding="utf-8")
    env = dict(os.environ)
    env.update(
        {
            "CANVASAI_DATA_DIR": str(tmp / "data"),
            "QT_QPA_PLATFORM": "offscreen",
            "CANVASAI_AUTOSAVE_S": "1",
            "CANVASAI_TEST_SCRIPT": str(script_path),
            "E2E_OUT": str(tmp),
            "CANVASAI_NO_PROMPTS": "1",
            "PYTHONPATH": str(ROOT),
            "XDG_CONFIG_HOME": str(tmp / "config"),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "canvasai"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"app exited early:\n{proc.stdout.read().decode(errors='replace')}"
            )
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        f"timed out waiting for {path.name}:\n{proc.communicate()[0].decode(errors='replace')}"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not APP_HOOK_READY, reason="canvasai/app.py has no CANVASAI_TEST_SCRIPT hook yet"
)
@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
def test_sigkill_then_restore_matches_last_autosave(tmp_path):
    first = _start(tmp_path, PAINT, "paint")
    try:
        _wait_for(tmp_path / "autosaved.json", first, 60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    recovery = tmp_path / "data" / "recovery"
    assert len(list(recovery.glob("*.ora"))) == 1 and len(list(recovery.glob("*.json"))) == 1

    second = _start(tmp_path, RESTORE, "restore")
    try:
        _wait_for(tmp_path / "restored.json", second, 60)
        second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
    result = json.loads((tmp_path / "restored.json").read_text())
    assert result["offered"] and "Untitled" in result["offered"]
    assert result["layers"] == ["Background", "Layer 1", "Glaze"]
    assert result["metadata"] == [{"prompt": "a red barn", "seed": 11}]
    assert result["modified"] is True
    assert (np.load(tmp_path / "restored.npy") == np.load(tmp_path / "expected.npy")).all()
    assert (
        np.load(tmp_path / "restored_mask.npy") == np.load(tmp_path / "expected_mask.npy")
    ).all()
    # The normal close of the second run removed the recovery files.
    assert second.returncode == 0
    assert list(recovery.glob("*.ora")) == [] and list(recovery.glob("*.json")) == []
