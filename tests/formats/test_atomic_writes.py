"""Atomic saves (issue 8): killed saves' temporaries cleaned, read-only files refused,
symlinks written through."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from canvasai.core.errors import FileFormatError
from canvasai.formats.atomic import (
    ReadOnlyFileError,
    atomic_write_bytes,
    atomic_writer,
    remove_stale_temporaries,
)
from canvasai.formats.ora import load_ora, save_ora
from tests.formats.files_helpers import flat, painted_document


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_save_temporaries_are_removed_on_next_save_and_open(tmp_path):
    target = tmp_path / "art.ora"
    save_ora(painted_document(), target)
    dead = _dead_pid()
    stale = tmp_path / f".art.ora.{dead}-abcd1234.tmp"
    stale.write_bytes(b"\0" * 1000)
    old_style = tmp_path / ".art.ora.k2j4h5g6.tmp"  # written before pids were in the name
    old_style.write_bytes(b"x")
    os.utime(old_style, (1, 1))
    live = tmp_path / f".art.ora.{os.getppid()}-zzzz9999.tmp"  # a live process's save
    live.write_bytes(b"x")
    other = tmp_path / f".other.ora.{dead}-abcd1234.tmp"  # another file's: not ours to touch
    other.write_bytes(b"x")
    mine = tmp_path / "notes.tmp"
    mine.write_bytes(b"x")

    load_ora(target)
    assert not stale.exists() and not old_style.exists()
    assert live.exists() and other.exists() and mine.exists()

    stale.write_bytes(b"\0")
    save_ora(painted_document(), target)
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(
        [live.name, other.name, mine.name]
    )


def test_temporary_of_a_save_in_progress_is_kept(tmp_path):
    target = tmp_path / "a.png"
    with atomic_writer(target) as fh:
        fh.write(b"partial")
        assert remove_stale_temporaries(target) == []
    assert target.read_bytes() == b"partial"


def test_saving_over_a_read_only_file_is_refused(tmp_path):
    target = tmp_path / "keep.ora"
    target.write_bytes(b"precious")
    target.chmod(0o444)
    try:
        with pytest.raises(ReadOnlyFileError, match="read-only") as info:
            save_ora(painted_document(), target)
        assert isinstance(info.value, FileFormatError) and isinstance(info.value, PermissionError)
        with pytest.raises(FileFormatError, match="read-only"):
            atomic_write_bytes(target, b"new")
        assert target.read_bytes() == b"precious"
        assert [p.name for p in tmp_path.iterdir()] == ["keep.ora"]
    finally:
        target.chmod(0o644)


def test_saving_to_a_symlink_writes_through_to_its_target(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "art.ora"
    save_ora(painted_document(seed=1), real)
    link = tmp_path / "link.ora"
    link.symlink_to(real)
    doc = painted_document(seed=2)
    save_ora(doc, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (flat(load_ora(real)) == flat(doc)).all()
    assert not list(tmp_path.glob(".*.tmp")) and not list(real_dir.glob(".*.tmp"))


def test_very_long_target_names_still_save(tmp_path):
    name = "é" * 120 + ".png"  # 244 bytes: no room for ".<name>.<pid>-<random>.tmp"
    atomic_write_bytes(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data"
