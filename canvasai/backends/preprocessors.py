"""Control maps for control layers: the one public entry point, for the UI and the tasks.

    from canvasai.backends.preprocessors import preprocess
    cmap, note = preprocess("canny", rgba)           # H x W x 3 uint8 map, note ("" or why)

- canny, line art (from a drawing or a photo), scribble and soft edge run in-process
  with OpenCV (`canvasai.backends.diffusion.control_maps`), no weights, no torch.
- depth runs a transformers depth-estimation model (DPT, Depth Anything, ...:
  ``AutoModelForDepthEstimation``) when the registry lists one (kind
  ``depth_estimator``); otherwise a cheap proxy, and the note says so and what to install.
- pose needs a pose-estimation model; when none is installed `preprocess` raises
  `GenerationError` naming what to install (a pose is never guessed).

Importing this module pulls in neither torch nor transformers: only the depth-model
path imports them, when it runs, so call it on a worker thread (the generation
service's), never the GUI thread. Maps follow the ControlNets' conventions: white lines
on black (canny, line art, scribble, soft edge), near = bright (depth), OpenPose
colours on black (pose).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import ControlKind
from canvasai.backends.diffusion import control_maps
from canvasai.backends.models import DEPTH_ESTIMATOR, POSE_ESTIMATOR, ModelInfo, ModelRegistry
from canvasai.core.errors import GenerationError, ModelError

#: what to install for each kind that needs a model (shown to the person)
DEPTH_MODEL_HINT = (
    "a transformers depth-estimation model (e.g. depth-anything/Depth-Anything-V2-Small-hf "
    "or Intel/dpt-hybrid-midas, the folder with config.json and model.safetensors) in the "
    "models folder"
)
POSE_MODEL_HINT = (
    "a transformers ViTPose model (e.g. usyd-community/vitpose-base-simple, the folder with "
    "config.json and model.safetensors) in the models folder"
)
DEPTH_PROXY_NOTE = control_maps.DEPTH_PROXY_NOTE + f"; for a real one install {DEPTH_MODEL_HINT}"
POSE_MISSING = (
    "Pose control needs a pose-estimation model to read the pose from this picture, and "
    f"none is installed. Install {POSE_MODEL_HINT}, or paint an OpenPose skeleton on the "
    "layer and turn its preprocessing off."
)


def control_kind(kind: ControlKind | str) -> ControlKind:
    """`kind` as a ControlKind ("canny", "depth", ... or the enum)."""
    try:
        return kind if isinstance(kind, ControlKind) else ControlKind(str(kind))
    except ValueError:
        known = ", ".join(k.value for k in ControlKind)
        raise GenerationError(f"Unknown control type “{kind}”: choose one of {known}.") from None


def needs_model(kind: ControlKind | str) -> bool:
    """True for the kinds whose preprocessor runs a model (depth, pose)."""
    return control_kind(kind) not in control_maps.WEIGHT_FREE


def model_for(kind: ControlKind | str, registry: ModelRegistry | None = None) -> ModelInfo | None:
    """The installed model `kind`'s preprocessor would use (None: weight-free, or missing)."""
    k = control_kind(kind)
    wanted = {ControlKind.DEPTH: DEPTH_ESTIMATOR, ControlKind.POSE: POSE_ESTIMATOR}.get(k)
    if wanted is None:
        return None
    return (registry or models.registry()).find(wanted)


def describe(kind: ControlKind | str, registry: ModelRegistry | None = None) -> str:
    """One line for the person: how a `kind` map will be made here."""
    k = control_kind(kind)
    if not needs_model(k):
        return f"{k.value}: computed here, no model needed"
    info = model_for(k, registry)
    if info is not None:
        return f"{k.value}: estimated with {info.name}"
    if k == ControlKind.DEPTH:
        return f"depth: a rough proxy (install {DEPTH_MODEL_HINT} for a real depth map)"
    return f"pose: needs {POSE_MODEL_HINT}"


def preprocess(
    kind: ControlKind | str,
    image: np.ndarray,
    registry: ModelRegistry | None = None,
    *,
    device: str | None = None,
    preprocess: bool = True,
) -> tuple[np.ndarray, str]:
    """The control map of `kind` for an H x W x 3|4 uint8 image: (H x W x 3 uint8, note).

    `registry` (default: THE registry) is where depth / pose models are looked up;
    `device` where they run (default: the best available). With ``preprocess=False``
    the image is taken as a ready map (flattened onto white). Raises `GenerationError`
    for pose without a pose model, and `ModelError` for a model that cannot be loaded.
    """
    k = control_kind(kind)
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise GenerationError("A control layer must be an RGB or RGBA image of 8-bit values.")
    if not preprocess or not needs_model(k):
        return control_maps.control_map(k, img, preprocess)
    info = model_for(k, registry)
    if k == ControlKind.DEPTH:
        if info is None:
            return control_maps.depth_proxy(img), DEPTH_PROXY_NOTE
        return depth_from_model(img, info, device), f"depth estimated with {info.name}"
    if info is None:
        raise GenerationError(POSE_MISSING)
    return pose_from_model(img, info, device), f"pose estimated with {info.name}; {POSE_NOTE}"


# ------------------------------------------------------------------------------- depth model
_lock = threading.Lock()
_cache: dict[str, Any] = {}  # "depth:<path>" / "pose:<path>" -> loaded parts (one per role)


def device_for(device: str | None) -> str:
    if device:
        return device
    from canvasai.backends.device import choose_device

    return choose_device().device


def cached(role: str, info: ModelInfo, load: Any) -> Any:
    """The loaded model of `role` for `info` (one kept per role: they are small)."""
    key = f"{role}:{info.path}"
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            for old in [k for k in _cache if k.startswith(role + ":")]:
                del _cache[old]
            try:
                hit = load()
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - bad files, missing configs
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ModelError(f"Could not load {info.name} ({info.path}): {first}") from exc
            _cache[key] = hit
        return hit


def image_processor(path: Any) -> Any:
    """The model folder's image processor (the PIL one: no torchvision needed)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(path, local_files_only=True, use_fast=False)
    except (TypeError, ValueError):
        return AutoImageProcessor.from_pretrained(path, local_files_only=True)


def _load_depth(info: ModelInfo, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(info.path, local_files_only=True)
    model = model.to(device).eval()
    return model, image_processor(info.path)


def depth_from_model(image: np.ndarray, info: ModelInfo, device: str | None = None) -> np.ndarray:
    """H x W x 3 depth map (near = bright) estimated by the transformers model `info`."""
    import torch
    from PIL import Image

    dev = device_for(device)
    model, processor = cached("depth", info, lambda: _load_depth(info, dev))
    h, w = image.shape[:2]
    rgb = control_maps.flatten_on_white(image)
    inputs = processor(images=Image.fromarray(rgb), return_tensors="pt")
    inputs = {k: v.to(dev) if hasattr(v, "to") else v for k, v in inputs.items()}
    with torch.inference_mode():
        out = model(**inputs)
    pred = out.predicted_depth
    if pred.ndim == 3:
        pred = pred[:, None]
    depth = torch.nn.functional.interpolate(pred.float(), size=(h, w), mode="bicubic",
                                            align_corners=False)[0, 0].cpu().numpy()
    cfg = model.config
    if getattr(cfg, "depth_estimation_type", "relative") == "metric" or cfg.model_type in (
        "zoedepth", "depth_pro"
    ):
        depth = -depth  # metric depth: larger = farther; the ControlNets want near = bright
    lo, hi = float(depth.min()), float(depth.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise GenerationError(f"{info.name} gave no usable depth for this picture.")
    span = hi - lo
    d = (depth - lo) / span if span > 1e-9 * max(1.0, abs(hi)) else np.full_like(depth, 0.5)
    g = np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


# -------------------------------------------------------------------------------- pose model
# OpenPose's 18 body points (the order the pose ControlNets were trained on), from COCO's 17
# (ViTPose's) plus the neck, halfway between the shoulders; -1 marks the neck.
_COCO_TO_OPENPOSE = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# limbs as pairs of OpenPose points, and the colours OpenPose draws points and limbs in
_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
POSE_MIN_SCORE = 0.3  # keypoints the model is less sure of are left out
POSE_NOTE = ("pose read for one person filling the picture (no person detector): crop to the "
             "person for a better reading")


def _load_pose(info: ModelInfo, device: str) -> tuple[Any, dict[str, Any]]:
    import json

    from transformers import AutoConfig, VitPoseForPoseEstimation

    config = AutoConfig.from_pretrained(info.path, local_files_only=True)
    if config.model_type != "vitpose":
        raise ModelError(f"{info.name} is a {config.model_type} model; pose maps need ViTPose.")
    model = VitPoseForPoseEstimation.from_pretrained(info.path, local_files_only=True)
    prep: dict[str, Any] = {}
    cfg_file = info.path / "preprocessor_config.json"
    if cfg_file.is_file():
        prep = json.loads(cfg_file.read_text(encoding="utf-8"))
    return model.to(device).eval(), prep


def pose_keypoints(
    image: np.ndarray, info: ModelInfo, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(17 x 2 keypoints in image pixels, 17 scores) of the one person filling `image`,
    by the transformers ViTPose model `info` (top-down, the whole picture as its box)."""
    import cv2
    import torch

    dev = device_for(device)
    model, prep = cached("pose", info, lambda: _load_pose(info, dev))
    size = prep.get("size") or {}
    in_h, in_w = int(size.get("height", 256)), int(size.get("width", 192))
    mean = np.asarray(prep.get("image_mean", (0.485, 0.456, 0.406)), np.float32)
    std = np.asarray(prep.get("image_std", (0.229, 0.224, 0.225)), np.float32)
    rgb = control_maps.flatten_on_white(image).astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    scale = min(in_w / w, in_h / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    ox, oy = (in_w - sw) // 2, (in_h - sh) // 2
    canvas = np.broadcast_to(mean, (in_h, in_w, 3)).copy()  # letterbox in the mean colour
    canvas[oy : oy + sh, ox : ox + sw] = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((canvas - mean) / std).transpose(2, 0, 1)[None].copy()).to(dev)
    kw: dict[str, Any] = {}
    if getattr(model.config.backbone_config, "num_experts", 1) > 1:  # ViTPose+ (MoE)
        kw["dataset_index"] = torch.zeros(1, dtype=torch.long, device=dev)
    with torch.inference_mode():
        heat = model(pixel_values=x.to(model.dtype), **kw).heatmaps[0].float().cpu().numpy()
    k, hh, hw = heat.shape
    if k != 17:
        raise ModelError(f"{info.name} finds {k} keypoints; pose maps need a COCO body model (17).")
    flat = heat.reshape(k, -1)
    idx = flat.argmax(axis=1)
    scores = flat.max(axis=1)
    hx, hy = (idx % hw + 0.5) * in_w / hw, (idx // hw + 0.5) * in_h / hh
    points = np.stack([np.clip((hx - ox) / scale, 0, w - 1), np.clip((hy - oy) / scale, 0, h - 1)],
                      axis=1)
    return points.astype(np.float32), scores.astype(np.float32)


def draw_openpose(
    shape: tuple[int, int], points: np.ndarray, scores: np.ndarray, min_score: float = POSE_MIN_SCORE
) -> np.ndarray:
    """An OpenPose body map (H x W x 3, black background) of COCO-17 keypoints."""
    import cv2

    h, w = shape
    pts: list[tuple[float, float] | None] = []
    for src in _COCO_TO_OPENPOSE:
        if src >= 0:
            ok = scores[src] >= min_score
            pts.append((float(points[src][0]), float(points[src][1])) if ok else None)
        else:  # the neck: both shoulders needed
            ok = scores[5] >= min_score and scores[6] >= min_score
            pts.append(tuple(((points[5] + points[6]) / 2).tolist()) if ok else None)
    canvas = np.zeros((h, w, 3), np.uint8)
    stick = max(2, round(max(h, w) / 128))
    for i, (a, b) in enumerate(_LIMBS):
        pa, pb = pts[a], pts[b]
        if pa is None or pb is None:
            continue
        mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
        length = float(np.hypot(pa[0] - pb[0], pa[1] - pb[1]))
        angle = float(np.degrees(np.arctan2(pa[1] - pb[1], pa[0] - pb[0])))
        poly = cv2.ellipse2Poly((round(mx), round(my)), (max(1, round(length / 2)), stick),
                                round(angle), 0, 360, 1)
        limb = canvas.copy()
        cv2.fillConvexPoly(limb, poly, _COLOURS[i])
        canvas = cv2.addWeighted(canvas, 0.4, limb, 0.6, 0)
    for i, p in enumerate(pts):
        if p is not None:
            cv2.circle(canvas, (round(p[0]), round(p[1])), stick + 2, _COLOURS[i], thickness=-1)
    return canvas


def pose_from_model(image: np.ndarray, info: ModelInfo, device: str | None = None) -> np.ndarray:
    """H x W x 3 OpenPose-style map from the ViTPose model `info` (see `pose_keypoints`)."""
    points, scores = pose_keypoints(image, info, device)
    return draw_openpose(image.shape[:2], points, scores)
