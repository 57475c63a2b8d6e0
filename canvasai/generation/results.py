"""The document's results: every finished candidate, kept until accepted or discarded.

Each result is one plain entry in ``doc.metadata["generation_results"]`` (oldest first): the
image, its seed, the backend's metadata and the job it came from (flow, rectangles, params
and the frozen request, arrays included), so a result found in a reopened project is
accepted exactly like a fresh one. The .ora extras store the arrays as PNG members
(`canvasai.formats.ora_extras`); nothing here imports Qt.

Adding or removing a result marks the document changed (saved, autosaved) without an undo
step, like the generation history.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import numpy as np

from canvasai.backends import api
from canvasai.core.geometry import Rect
from canvasai.document.document import Document
from canvasai.generation.flows import FlowJob
from canvasai.generation.params import FlowParams

RESULTS_KEY = "generation_results"

# The value types a stored request may hold, by name (nothing else is rebuilt from a file).
_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (api.GenerationRequest, api.BlendSettings, api.ControlSettings,
              api.OutpaintSettings, api.UpscaleSettings, api.LoraSpec)
}
_ENUMS: dict[str, type[enum.Enum]] = {e.__name__: e for e in (api.Task, api.ControlKind)}


def _plain(value: Any) -> Any:
    """A request (or a part of it) as dicts, lists and arrays the .ora extras can store."""
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _rebuilt(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_rebuilt(v) for v in value)
    if isinstance(value, Mapping):
        if "__enum__" in value:
            return _ENUMS[str(value["__enum__"])](value["value"])
        if "__type__" in value:
            cls = _TYPES[str(value["__type__"])]
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: _rebuilt(v) for k, v in value.items() if k in names})
        return {k: _rebuilt(v) for k, v in value.items()}
    return value


def _rect(r: Rect | None) -> list[int] | None:
    return None if r is None else [r.x, r.y, r.w, r.h]


def entry_for(job: FlowJob, image: np.ndarray, seed: int,
              metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stored result (arrays are shared with the job, not copied)."""
    return {
        "image": np.ascontiguousarray(image, dtype=np.uint8),
        "seed": int(seed),
        "metadata": {str(k): v for k, v in dict(metadata or {}).items()
                     if isinstance(v, (str, int, float, bool)) or v is None},
        "job": {
            "flow": job.flow,
            "target": _rect(job.target),
            "source_rect": _rect(job.source_rect),
            "preview_rect": _rect(job.preview_rect),
            "doc_size": list(job.doc_size),
            "sketch_layer_id": job.sketch_layer_id,
            "params": job.params.to_dict(),
            "request": _plain(job.request),
        },
    }


def job_of(entry: Mapping[str, Any]) -> FlowJob:
    """The job a stored result came from. Raises ValueError/KeyError/TypeError if malformed."""
    j = entry["job"]
    request = _rebuilt(j["request"])
    if not isinstance(request, api.GenerationRequest):
        raise ValueError("not a generation request")

    def rect(v: Any) -> Rect | None:
        return None if v is None else Rect(*(int(x) for x in v))

    return FlowJob(
        flow=str(j["flow"]), request=request, target=rect(j["target"]),
        source_rect=rect(j["source_rect"]), params=FlowParams.from_dict(j["params"]),
        sketch_layer_id=None if j.get("sketch_layer_id") is None else int(j["sketch_layer_id"]),
        preview_rect=rect(j.get("preview_rect")),
        doc_size=tuple(int(v) for v in j.get("doc_size") or (0, 0)),  # type: ignore[arg-type]
    )


def entries(doc: Document | None) -> list[dict[str, Any]]:
    """The stored results of `doc`, oldest first (the list itself: entries are live)."""
    if doc is None:
        return []
    raw = doc.metadata.get(RESULTS_KEY)
    if not isinstance(raw, list):
        return []
    return raw


def add(doc: Document, entry: dict[str, Any]) -> None:
    doc.add_metadata_entry(RESULTS_KEY, entry)


def remove(doc: Document, entry: Mapping[str, Any]) -> bool:
    """Drop `entry` (accepted or discarded). Returns False if it was not there."""
    raw = entries(doc)
    for i, e in enumerate(raw):
        if e is entry:
            del raw[i]
            doc.history.note_change()
            return True
    return False


def usable(doc: Document | None) -> list[tuple[dict[str, Any], FlowJob]]:
    """The stored results that can still be shown and accepted, with their jobs
    (an entry another version wrote in a form this one cannot read is left in place)."""
    out = []
    for e in entries(doc):
        try:
            image = e["image"]
            if not isinstance(image, np.ndarray) or image.ndim != 3:
                continue
            out.append((e, job_of(e)))
        except (KeyError, ValueError, TypeError, api.RequestError):
            continue
    return out
