"""Recovery files: written, found only for dead processes, restored fully, removed on close."""

from __future__ import annotations

import json
import os

import numpy as np

from canvasai.formats import recovery
from canvasai.formats.recovery import (
    RecoverySession,
    list_recoverable,
    restore,
    snapshot_document,
)
from tests.formats.files_helpers import flat, painted_document


def test_data_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path))
    assert recovery.recovery_dir() == tmp_path / "recovery"


def test_snapshot_is_independent_of_later_strokes():
    doc = painted_document()
    doc.metadata["generation_history"] = [{"prompt": "a"}]
    snap = snapshot_document(doc)
    before = flat(snap)
    layer = doc.layers[1]
    layer.surface.writable_tile((0, 0))[:] = 7  # strokes mutate tiles in place
    doc.metadata["generation_history"].append({"prompt": "b"})
    assert (flat(snap) == before).all()
    assert len(snap.metadata["generation_history"]) == 1
    assert [la.name for la in snap.layers] == [la.name for la in doc.layers]


def test_write_list_restore_and_remove(tmp_path):
    doc = painted_document()
    doc.metadata["generation_history"] = [
        {"prompt": "x", "thumbnail": np.zeros((4, 4, 3), np.uint8)}
    ]
    session = RecoverySession(tmp_path, "1-abc")
    session.write(snapshot_document(doc), "/home/me/pic.ora", revision=5, title="pic.ora")
    info = json.loads(session.info_path.read_text())
    assert info["pid"] == os.getpid() and info["original_path"] == "/home/me/pic.ora"
    # Our own live process: not offered.
    assert list_recoverable(tmp_path) == []
    info["pid"] = 2**22 + 12345  # a process that does not exist
    session.info_path.write_text(json.dumps(info))
    [entry] = list_recoverable(tmp_path)
    assert entry.display_name == "pic.ora" and entry.revision == 5 and entry.time_text
    back = restore(entry)
    assert (flat(back) == flat(doc)).all()
    assert (back.mask.read(doc.rect) == doc.mask.read(doc.rect)).all()
    assert back.metadata["generation_history"][0]["thumbnail"].shape == (4, 4, 3)
    assert not back.history.can_undo()
    mine = RecoverySession(tmp_path, "2-def")
    mine.adopt(entry)
    assert mine.exists() and not entry.ora_path.exists()
    assert list_recoverable(tmp_path, exclude=mine) == []
    mine.remove()
    assert list(tmp_path.iterdir()) == []


def test_clean_exit_and_broken_entries_are_not_offered(tmp_path):
    (tmp_path / "x.json").write_text("{broken")
    (tmp_path / "x.ora").write_bytes(b"")
    (tmp_path / "y.json").write_text(json.dumps({"pid": 2**22 + 1, "clean_exit": True}))
    (tmp_path / "y.ora").write_bytes(b"")
    (tmp_path / "z.json").write_text(json.dumps({"pid": 2**22 + 1}))  # no .ora next to it
    assert list_recoverable(tmp_path) == []
    assert list_recoverable(tmp_path / "missing") == []
