import dataclasses
import json

import pytest

from canvasai.core import settings as st
from canvasai.core.settings import JsonStore, MemoryStore, Settings


def test_flat_round_trip_covers_every_field():
    s = Settings()
    flat = s.to_flat()
    n_fields = sum(len(dataclasses.fields(getattr(s, f.name))) for f in dataclasses.fields(s))
    assert len(flat) == n_fields
    assert Settings.from_flat(flat) == s
    json.dumps(flat)  # storable as is


def test_untrusted_values_are_coerced_clamped_or_defaulted():
    s = Settings.from_flat({
        "generation/steps": "35", "generation/guidance": "nan", "generation/grow_px": 99999,
        "generation/color_match": "true", "models/models_dirs": "/one", "nope/x": 1,
        "generation/unknown": 3, "files/autosave_s": "soon",
    })
    assert s.generation.steps == 35
    assert s.generation.guidance == Settings().generation.guidance
    assert s.generation.grow_px == st.RANGES["generation/grow_px"][1]
    assert s.generation.color_match is True
    assert s.models.models_dirs == ("/one",)
    assert s.files.autosave_s == Settings().files.autosave_s


def test_environment_overrides_the_store(tmp_path):
    store = MemoryStore({"files/autosave_s": 30, "models/device": "cuda"})
    env = {"CANVASAI_AUTOSAVE_S": "5", "CANVASAI_MODELS_DIR": f"{tmp_path}/a:{tmp_path}/b",
           "CANVASAI_NO_PROMPTS": "1"}
    s = st.load(store, env)
    assert s.files.autosave_s == 5.0
    assert s.models.device == "cuda"
    assert s.models.models_dirs == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert s.ui.confirm_dialogs is False


def test_update_persists_only_what_changed(tmp_path):
    store = JsonStore(tmp_path / "settings.json")
    st.reset(store)
    fresh = st.update(**{"generation/steps": 31})
    assert fresh.generation.steps == 31 and st.current() is fresh
    assert json.loads((tmp_path / "settings.json").read_text()) == {"generation/steps": 31}
    st.reset(store)
    assert st.current().generation.steps == 31


def test_a_corrupt_json_store_reads_as_defaults(tmp_path):
    p = tmp_path / "settings.json"
    p.write_text("{not json")
    assert st.load(JsonStore(p), {}) == Settings()


@pytest.mark.parametrize("var", sorted(st.ENVIRONMENT))
def test_every_environment_variable_maps_to_a_real_field(var):
    key, _ = st.ENVIRONMENT[var]
    assert key in Settings().to_flat()


def test_fields_with_fixed_choices_refuse_anything_else():
    s = Settings.from_flat({"models/device": "CUDA", "models/precision": "fp8",
                            "generation/preview_quality": "off"})
    assert s.models.device == "cuda" and s.models.precision == ""
    assert s.generation.preview_quality == "off"
    for key, choices in st.CHOICES.items():
        section, name = key.split("/")
        assert getattr(getattr(Settings(), section), name) in choices, key


def test_new_preferences_have_their_defaults_and_limits():
    s = Settings()
    assert s.ui.clear_mask_after_accept is True
    assert s.editing.undo_mb == 1024 and s.editing.pressure_curve == 1.0
    assert s.files.recent == () and s.files.last_dir == ""
    clamped = Settings.from_flat({"editing/undo_mb": 1, "editing/pressure_curve": 100})
    assert clamped.editing.undo_mb == st.RANGES["editing/undo_mb"][0]
    assert clamped.editing.pressure_curve == st.RANGES["editing/pressure_curve"][1]
