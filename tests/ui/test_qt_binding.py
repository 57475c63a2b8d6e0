"""The Qt binding must not leak references to None (the app would abort mid-session).

PySide6-Essentials 6.12.0 on Python < 3.12 drops one reference to `None` on
every call of a method returning void (QPainter.save, QObject.setObjectName,
...). Python 3.12+ makes None immortal so nothing shows there, but on 3.11
None's count reaches zero after a few thousand calls and the interpreter
aborts with "none_dealloc: deallocating None" — within seconds of painting.
6.11.3 is fine. Short tests pass either way, so this checks the binding itself.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_void_calls_keep_none_alive():
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(200):
        obj.setObjectName("x")
    lost = before - sys.getrefcount(None)
    assert lost < 50, (
        f"the Qt binding dropped {lost} references to None in 200 calls: this PySide6 build "
        "aborts the app on Python < 3.12 (use PySide6-Essentials < 6.12 or Python >= 3.12)")
