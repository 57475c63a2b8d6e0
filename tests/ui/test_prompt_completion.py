"""Completing <lora:name:weight> tags in the prompt."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from canvasai.ui.prompt_completion import LoraCompleter, open_tag


def test_open_tag_finds_the_partial_name() -> None:
    assert open_tag("a cat <lora:det") == "det"
    assert open_tag("a cat <LORA:") == ""
    assert open_tag("a cat <lora:detail:0.8> and") is None
    assert open_tag("a cat") is None


def _editor(qtbot, names):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.show()
    qtbot.waitExposed(edit)
    edit.setFocus()
    return edit, LoraCompleter(edit, lambda: names)


def test_typing_a_tag_offers_matching_loras_and_enter_writes_the_tag(qtbot) -> None:
    edit, comp = _editor(qtbot, ["detail-tweaker", "pixel-art", "Detailed-eyes"])
    qtbot.keyClicks(edit, "a cat <lora:det")
    popup = comp.completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=2000)
    shown = [comp.completer.completionModel().index(i, 0).data()
             for i in range(comp.completer.completionCount())]
    assert shown == ["detail-tweaker", "Detailed-eyes"]
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.toPlainText() == "a cat <lora:detail-tweaker:1>"
    assert not popup.isVisible()
    qtbot.keyClicks(edit, ", night")
    assert edit.toPlainText() == "a cat <lora:detail-tweaker:1>, night"
    assert not popup.isVisible()


def test_no_list_outside_a_tag_or_without_matches(qtbot) -> None:
    edit, comp = _editor(qtbot, ["pixel-art"])
    qtbot.keyClicks(edit, "lora: pixel")
    assert not comp.completer.popup().isVisible()
    qtbot.keyClicks(edit, " <lora:zzz")
    assert not comp.completer.popup().isVisible()


def test_completing_inside_a_closed_tag_keeps_its_weight(qtbot) -> None:
    edit, comp = _editor(qtbot, ["pixel-art"])
    edit.setPlainText("<lora:pix:0.5>")
    cursor = edit.textCursor()
    cursor.setPosition(len("<lora:pix"))
    edit.setTextCursor(cursor)
    comp.insert("pixel-art")
    assert edit.toPlainText() == "<lora:pixel-art:0.5>"
