"""The Preferences dialog: pages driven by the settings model, reachable from the menu."""

from __future__ import annotations

import pytest

from canvasai.core import settings
from canvasai.ui.preferences_dialog import (
    PAGES,
    CredentialsPage,
    PreferencesDialog,
    PreferencesPage,
)


@pytest.fixture(autouse=True)
def _data(tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path / "data"))
    settings.reset(settings.MemoryStore())


def test_credentials_page_loads_and_applies_through_the_settings_model(qtbot, tmp_path):
    dlg = PreferencesDialog()
    qtbot.addWidget(dlg)
    assert dlg.list.item(0).text() == "Content Credentials" and CredentialsPage in PAGES
    page = dlg.page("Content Credentials")
    assert isinstance(page, CredentialsPage)
    assert page.sign.isChecked() and page.self_issued.isChecked()
    assert not page.cert_chain.isEnabled() and page.tsa_url.text() == ""

    page.own.setChecked(True)
    assert page.cert_chain.isEnabled()
    page.cert_chain.setText(str(tmp_path / "chain.pem"))
    page.private_key.setText(str(tmp_path / "key.pem"))
    page.tsa_url.setText("http://tsa.example")
    dlg.apply()
    c = settings.current().credentials
    assert c.cert_chain.endswith("chain.pem") and c.tsa_url == "http://tsa.example"

    page.sign.setChecked(False)
    assert not page.own.isEnabled()
    dlg.reject()  # cancel: nothing more is stored
    assert settings.current().credentials.sign is True

    dlg2 = PreferencesDialog()
    qtbot.addWidget(dlg2)
    page2 = dlg2.page("Content Credentials")
    assert page2.own.isChecked() and page2.cert_chain.text().endswith("chain.pem")
    page2.self_issued.setChecked(True)
    dlg2.accept()  # back to self-issued: the paths are cleared
    assert settings.current().credentials.cert_chain == ""


def test_check_identity_says_self_issued_or_why_not(qtbot, tmp_path):
    page = CredentialsPage()
    qtbot.addWidget(page)
    page.load(settings.current())
    page.signer_name.setText("Ada")
    text = page.check_identity()
    assert "Ada" in text and "self-issued" in text and "not trusted" in text
    page.own.setChecked(True)
    page.cert_chain.setText(str(tmp_path / "missing.pem"))
    page.private_key.setText(str(tmp_path / "missing.key"))
    assert "Cannot sign" in page.check_identity()
    page.sign.setChecked(False)
    assert "off" in page.check_identity()


def test_pages_are_pluggable(qtbot):
    class Other(PreferencesPage):
        title = "Other"

        def load(self, s):
            self.loaded = s

        def changes(self):
            return {"ui/prompt_history_size": 7}

    dlg = PreferencesDialog(pages=[CredentialsPage, Other])
    qtbot.addWidget(dlg)
    dlg.show_page("Other")
    assert dlg.stack.currentWidget().widget() is dlg.page("Other")
    dlg.apply()
    assert settings.current().ui.prompt_history_size == 7


def test_menu_entry_opens_the_dialog_without_blocking(qtbot):
    from canvasai.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    assert w.preferences_action in w.menu_edit.actions()
    w.preferences_action.trigger()  # returns at once: the dialog is window-modal
    dlg = w.preferences_dialog
    assert dlg.isVisible() and dlg.page("Content Credentials") is not None
    dlg.reject()


def test_export_dialog_says_how_it_will_sign(qtbot):
    from canvasai.ui.export_dialog import ExportDialog

    dlg = ExportDialog("Export")
    qtbot.addWidget(dlg)
    assert "self-issued" in dlg.signing.text() and "not trusted" in dlg.signing.text()
    settings.update(**{"credentials/sign": False})
    assert "off" in ExportDialog("Export").signing.text()


def test_servers_page_edits_servers_and_shows_their_state(qtbot):
    from canvasai.ui.preferences_dialog import ServersPage
    from tests.support.fake_comfyui import FakeComfyUI

    with FakeComfyUI(name="NVIDIA GeForce RTX 4090", vram_total=24 * 10**9,
                     vram_free=20 * 10**9) as srv:
        settings.update(**{"remote/servers": [srv.url, "http://127.0.0.1:9"],
                           "remote/tokens": ["", "t"]})
        dlg = PreferencesDialog()
        qtbot.addWidget(dlg)
        page = dlg.page("Servers")
        assert isinstance(page, ServersPage) and ServersPage in PAGES
        assert page.rows() == [(srv.url, ""), ("http://127.0.0.1:9", "t")]
        qtbot.waitUntil(lambda: page.state_text(0).startswith("connected"), timeout=10000)
        assert "NVIDIA GeForce RTX 4090, 20.0 of 24.0 GB free" in page.state_text(0)
        qtbot.waitUntil(lambda: page.state_text(1).startswith("not connected"), timeout=10000)
        page.table.selectRow(1)
        page.remove_selected()
        row = page.add_row("gpu.example:8188", "secret")
        assert page.table.cellWidget(row, page.TOKEN).echoMode().name == "Password"
        dlg.apply()
        r = settings.current().remote
        assert r.servers == (srv.url, "gpu.example:8188") and r.tokens == ("", "secret")
