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
    assert CredentialsPage in PAGES
    assert "Content Credentials" in [dlg.list.item(i).text() for i in range(dlg.list.count())]
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


def test_every_page_loads_and_saves_unchanged_settings_as_they_were(qtbot):
    before = settings.current().to_flat()
    dlg = PreferencesDialog()
    qtbot.addWidget(dlg)
    for key, value in dlg.changes().items():  # every page is bound to a real field
        assert key in before, key
        assert value == before[key] or list(value) == before[key], key
    dlg.apply()
    assert settings.current().to_flat() == before


def test_models_device_generation_and_editing_pages_write_the_settings_model(qtbot, tmp_path):
    from canvasai.ui.preferences_dialog import DevicePage, EditingPage, GenerationPage, ModelsPage

    dlg = PreferencesDialog()
    qtbot.addWidget(dlg)
    models = dlg.page("Models")
    assert isinstance(models, ModelsPage) and "own folder" in models.empty_note.text()
    models.add_folder(str(tmp_path / "comfy"))
    models.add_folder(str(tmp_path / "comfy"))  # once only
    models.hf_cache.setChecked(False)
    device = dlg.page("Device and precision")
    assert isinstance(device, DevicePage)
    device.device.setCurrentIndex(device.device.findData("cpu"))
    device.precision.setCurrentIndex(device.precision.findData("bf16"))
    gen = dlg.page("Generation")
    assert isinstance(gen, GenerationPage) and gen.clear_mask.isChecked()
    gen.previews.setCurrentIndex(gen.previews.findData("off"))
    gen.grow.setValue(9)
    gen.feather.setValue(20)
    gen.clear_mask.setChecked(False)
    editing = dlg.page("Editing")
    assert isinstance(editing, EditingPage) and editing.curve_word.text() == "linear"
    editing.autosave.setValue(120)
    editing.undo.setValue(2048)
    editing.curve.setValue(0.5)
    assert editing.curve_word.text() == "soft" and editing.curve_drawing.exponent == 0.5
    seen = []
    dlg.applied.connect(seen.append)
    dlg.accept()
    s = settings.current()
    assert seen and seen[0] is s
    assert s.models.models_dirs == (str(tmp_path / "comfy"),) and not s.models.include_hf_cache
    assert (s.models.device, s.models.precision) == ("cpu", "bf16")
    assert s.generation.preview_quality == "off"
    assert (s.generation.grow_px, s.generation.feather_px) == (9, 20)
    assert s.ui.clear_mask_after_accept is False
    assert (s.files.autosave_s, s.editing.undo_mb, s.editing.pressure_curve) == (120.0, 2048, 0.5)


def test_applied_preferences_take_effect_in_the_window(qtbot):
    from canvasai.document.document import Document
    from canvasai.ui.main_window import MIB, MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.set_document(Document(64, 64))
    w.preferences_action.trigger()
    dlg = w.preferences_dialog
    dlg.page("Editing").autosave.setValue(300)
    dlg.page("Editing").undo.setValue(512)
    dlg.page("Editing").curve.setValue(2.0)
    dlg.page("Generation").clear_mask.setChecked(False)
    dlg.accept()
    assert w.files.autosave_s == 300.0 and w.files.timer.interval() == 300_000
    assert w.document.history.budget == 512 * MIB
    assert w.brush.pressure_curve == 2.0 and w.brush.pressure(0.5) == 0.25
    assert not w.actions_by_name["clear_mask_on_accept"].isChecked()
    w.set_document(Document(32, 32))  # a new picture gets the new undo memory too
    assert w.document.history.budget == 512 * MIB


def test_preview_quality_off_turns_live_previews_off_in_the_request():
    from canvasai.document.document import Document
    from canvasai.generation import flows
    from canvasai.generation.params import FlowParams

    doc = Document(64, 64)
    assert flows.plan(doc, "upscale", FlowParams()).request.previews is True
    settings.update(**{"generation/preview_quality": "off"})
    assert flows.plan(doc, "upscale", FlowParams()).request.previews is False
