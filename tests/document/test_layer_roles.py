"""Layer roles (control layer, reference image, region prompt): plain values, undoable."""

import pytest

from canvasai.document.document import Document
from canvasai.document.layer import (
    ControlRole,
    ReferenceRole,
    RegionRole,
    RoleError,
    role_from_dict,
    role_to_dict,
)


def test_each_role_change_is_one_undo_step_and_restores_the_role_before():
    doc = Document(32, 32)
    layer = doc.active_layer
    depth = ControlRole(kind="depth", strength=0.7, start=0.1, end=0.6)
    doc.set_layer_properties(layer, role=depth)
    assert layer.role == depth and layer.role_type == "control" and not layer.is_sketch
    assert "control" in doc.history.undo_text()
    doc.set_layer_properties(layer, role=ReferenceRole(kind="style", strength=1.2))
    doc.set_layer_properties(layer, role=RegionRole("a red fox", "blurry"))
    doc.set_layer_properties(layer, role=None)
    assert layer.role is None and "normal layer" in doc.history.undo_text()
    doc.undo()
    assert layer.role == RegionRole("a red fox", "blurry")
    doc.undo()
    doc.undo()
    assert layer.role == depth
    doc.undo()
    assert layer.role is None


def test_the_old_sketch_flag_is_a_scribble_control_layer():
    doc = Document(32, 32)
    layer = doc.active_layer
    doc.set_layer_properties(layer, role=ControlRole(kind="canny", strength=0.5))
    doc.set_layer_properties(layer, is_sketch=True)  # keeps strength, becomes scribble
    assert layer.is_sketch and layer.role == ControlRole(kind="scribble", strength=0.5)
    doc.undo()  # the whole role comes back, not just the flag
    assert layer.role == ControlRole(kind="canny", strength=0.5)
    doc.set_layer_properties(layer, is_sketch=False)  # not a scribble: left as it is
    assert layer.role == ControlRole(kind="canny", strength=0.5)
    layer.is_sketch = True
    assert layer.role.kind == "scribble"
    assert layer.duplicate().role == layer.role


@pytest.mark.parametrize("role", [
    ControlRole(kind="pose", strength=1.5, start=0.2, end=0.9, preprocess=False, model="cn/pose"),
    ReferenceRole(kind="composition", strength=0.3),
    RegionRole("sky at dusk", ""),
    None,
])
def test_roles_round_trip_through_plain_values(role):
    assert role_from_dict(role_to_dict(role)) == role


@pytest.mark.parametrize("data, message", [
    ({"type": "control", "kind": "laser"}, "Unknown control type"),
    ({"type": "control", "start": 0.8, "end": 0.2}, "start before it ends"),
    ({"type": "control", "strength": "high"}, "must be a number"),
    ({"type": "reference", "strength": 9}, "between 0 and 2"),
    ({"type": "region", "prompt": "  "}, "needs a prompt"),
    ({"type": "wizard"}, "Unknown layer role"),
    ([1, 2], "must be an object"),
])
def test_bad_roles_are_refused_with_a_reason(data, message):
    with pytest.raises(RoleError, match=message):
        role_from_dict(data)
