"""Styles: templates, settings and LoRAs in one bundle, shipped per family, as files."""

from __future__ import annotations

import json

import pytest

from canvasai.generation import flows, styles
from canvasai.generation.params import FlowParams
from canvasai.generation.styles import LiveSettings, Style, StyleError


def test_a_style_round_trips_through_its_file(tmp_path) -> None:
    s = Style(name="Inkwash fox", family="sd1", model="dreamshaper",
              loras=(("Lora/inkwash", 0.8),), sampler="euler_a", steps=20, guidance=6.5,
              strength=0.6, prompt="{prompt}, ink and wash", negative="{negative}, photo",
              live=LiveSettings(steps=4, guidance=1.5, strength=0.4))
    path = styles.save(s, tmp_path / "inkwash.json")
    assert styles.load(path) == s
    assert json.loads(path.read_text())["format"] == "canvasai-style"


def test_templates_wrap_the_prompt_and_keep_other_braces() -> None:
    s = Style(name="x", prompt="{prompt}, 35 mm photo {not a field}", negative="{negative}, text")
    assert s.render("a fox", "blurry") == ("a fox, 35 mm photo {not a field}", "blurry, text")
    assert s.render("a fox", "") == ("a fox, 35 mm photo {not a field}", "text")


def test_shipped_styles_load_and_follow_the_family() -> None:
    every = styles.shipped()
    assert len(every) >= 6 and len({s.name for s in every}) == len(every)
    flux = {s.name for s in styles.shipped("flux")}
    assert "Photograph" in flux and "Detailed (Flux.1 dev)" in flux
    assert "Quick draft (SDXL)" not in flux


def test_picking_a_style_sets_the_panel_values_and_planning_applies_its_templates() -> None:
    from canvasai.document.document import Document

    s = Style(name="Ink", loras=(("Lora/inkwash", 0.8),), steps=9, guidance=5.5,
              prompt="{prompt}, ink and wash", negative="{negative}, photo")
    p = styles.apply(s, FlowParams(prompt="a fox", negative_prompt="blurry", steps=30))
    assert (p.steps, p.guidance, p.style, p.loras) == (9, 5.5, "Ink", (("Lora/inkwash", 0.8),))
    assert p.prompt == "a fox"  # the person's text is untouched; the job gets the template
    job = flows.plan(Document(64, 64), "generate", p, style=s)
    assert job.request.prompt == "a fox, ink and wash"
    assert job.request.negative_prompt == "blurry, photo"
    assert [(x.name, x.weight) for x in job.request.loras] == [("Lora/inkwash", 0.8)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "one JSON object"),
        ('{"name": ""}', "needs a name"),
        ('{"name": "x", "steps": 100000}', "outside"),
        ('{"name": "x", "guidance": "high"}', "must be a number"),
        ('{"name": "x", "loras": [["a", 99]]}', "outside"),
        ('{"name": "x", "loras": "a"}', "list"),
        ('{"name": "x", "format": "other"}', "Not a CanvasAI style"),
        ('{"name": "x", "live": 3}', "live must be"),
        ("{not json", "not a style file"),
    ],
)
def test_bad_style_files_are_refused_with_a_reason(tmp_path, content, message) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(StyleError, match=message):
        styles.load(f)


def test_a_huge_style_file_is_refused(tmp_path) -> None:
    f = tmp_path / "huge.json"
    f.write_text('{"name": "x", "prompt": "' + "a" * 400_000 + '"}')
    with pytest.raises(StyleError, match="too large"):
        styles.load(f)


def test_the_persons_styles_are_listed_and_a_bad_one_is_skipped(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(styles, "user_dir", lambda: tmp_path)
    styles.save(Style(name="Mine", family="sdxl"), tmp_path / "mine.json")
    (tmp_path / "broken.json").write_text("{")
    names = [s.name for s in styles.available("sdxl")]
    assert "Mine" in names and "Photograph" in names
    assert "Mine" not in [s.name for s in styles.available("flux")]
    assert styles.find("Mine").family == "sdxl"


def test_import_keeps_a_style_in_its_own_file_and_export_writes_it_back(tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "user_dir", lambda: tmp_path / "data" / "styles")
    s = Style(name="Inkwash fox!", family="sd1", loras=(("Lora/ink", 0.7),), steps=18,
              prompt="{prompt}, ink and wash")
    src = styles.save(s, tmp_path / "shared.json")
    got = styles.import_style(src)
    assert got == s and (tmp_path / "data" / "styles" / "inkwash-fox.json").is_file()
    assert styles.find("Inkwash fox!", "sd1") == s
    out = styles.export_style(got, tmp_path / "out" / "copy")  # ".json" added
    assert out.name == "copy.json" and styles.load(out) == s
    # a shipped style's name is kept apart, not shadowed
    shipped = styles.shipped("sd1")[0]
    again = styles.import_style(styles.save(shipped, tmp_path / "shipped.json"))
    assert again.name == f"{shipped.name} (imported)"


def test_a_bad_file_is_not_imported_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "user_dir", lambda: tmp_path / "styles")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "Loud", "steps": 5000}')
    with pytest.raises(StyleError, match="steps 5000 is outside"):
        styles.import_style(bad)
    bad.write_text("not json")
    with pytest.raises(StyleError, match="bad.json is not a style file"):
        styles.import_style(bad)
    assert not (tmp_path / "styles").exists()


def test_the_panels_settings_become_a_style():
    p = FlowParams(model="dreamshaper", loras=(("Lora/ink", 0.5),), scheduler="euler_a",
                   steps=22, guidance=5.5, strength=0.4)
    s = styles.from_params("Mine", p, "sd1")
    assert (s.model, s.loras, s.sampler, s.steps, s.guidance, s.strength, s.family) == (
        "dreamshaper", (("Lora/ink", 0.5),), "euler_a", 22, 5.5, 0.4, "sd1")
    assert styles.apply(s, FlowParams()).loras == (("Lora/ink", 0.5),)
