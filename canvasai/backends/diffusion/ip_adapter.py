"""IP-Adapters (SD 1.x, SDXL) and the CLIP / SigLIP image encoders they (and Flux Redux) use.

Its job: find the IP-Adapter a reference asks for (or the best installed one), refuse
one of another family, or whose layer sizes do not fit the UNet, before anything is
loaded; find and load its image encoder; load the adapters into the UNet (one slot per
reference, through diffusers' ``load_ip_adapter`` with a state dict read from the local
file, the encoder registered on the pipeline first); and give each slot its scale: its
strength (CONTENT), or InstantStyle's per-block scales (STYLE: the first
attention-bearing up block; COMPOSITION on SDXL: the last attention-bearing down block).
SD 1.x has no composition block: such a reference is used as content, with a note.

Adapters and encoders are found in the models folders (ComfyUI ``ipadapter/``,
``clip_vision/``; h94/IP-Adapter's ``models/`` and ``sdxl_models/`` with their
``image_encoder/``). A missing one is named with where to put it.

`references` (the entry point) calls `_plan_ip_adapter` with its per-model state and
the job's plan; the small helpers every reference method shares (`reference_rgb`,
`_pil`, `_describe_ref`, `_models_dir`) live here too, so neither this
module nor `redux` imports `references`. Torch/transformers are imported lazily.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import ReferenceImage, ReferenceKind
from canvasai.backends.diffusion import families
from canvasai.backends.models import (
    IMAGE_ENCODER,
    IPADAPTER,
    REDUX,
    UNKNOWN,
    ModelInfo,
    describe,
    read_safetensors_header,
    shapes_from_header,
)
from canvasai.core.errors import ModelError

if TYPE_CHECKING:
    from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager

log = logging.getLogger(__name__)

#: `Family.reference_method` of the families that take IP-Adapters
IP_ADAPTER = "ip_adapter"

#: what to install for a family's references (file, where ComfyUI keeps it, where it comes from)
_IP_HINTS = {
    "sd1": ("ip-adapter_sd15.safetensors", "h94/IP-Adapter, models/"),
    "sd2": ("an SD 2.x IP-Adapter", "(few exist)"),
    "sdxl": ("ip-adapter_sdxl_vit-h.safetensors", "h94/IP-Adapter, sdxl_models/"),
}
_ENCODER_NAMES = {  # (projection, hidden) widths -> the encoder people know
    1024: "CLIP ViT-H/14 (CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, or h94/IP-Adapter "
          "models/image_encoder)",
    1280: "CLIP ViT-bigG/14 (CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors, or h94/IP-Adapter "
          "sdxl_models/image_encoder)",
}
_ENCODER_BY_HIDDEN = {1280: 1024, 1664: 1280}  # hidden width -> projection width (ViT-H, bigG)


@dataclass
class _Encoder:
    path: str
    model: Any
    processor: Any


# ------------------------------------------------------------- shared by every reference method


def reference_rgb(ref: ReferenceImage) -> np.ndarray:
    """The reference as RGB; transparent parts (a cut-out layer) over white."""
    img = ref.image
    if img.shape[2] == 3:
        return np.ascontiguousarray(img)
    a = img[..., 3:4].astype(np.float32) / 255.0
    rgb = img[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _pil(img: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(img)


def _describe_ref(ref: ReferenceImage, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ref.kind.value, "strength": float(ref.strength)}
    if model:
        out["model"] = model
    return out


# ------------------------------------------------------------------------------ IP-Adapter


@dataclass(frozen=True)
class AdapterFit:
    """An IP-Adapter file and the image encoder width it needs."""

    info: ModelInfo
    needs: str  # "projection" (plain IP-Adapter: image embeds) | "hidden" (plus/full: patches)
    width: int


def adapter_shapes(info: ModelInfo) -> dict[str, tuple[int, ...]]:
    if info.format != "single_file" or info.path.suffix.lower() != ".safetensors":
        raise ModelError(f"IP-Adapter {info.name}: only .safetensors IP-Adapter files can be used.")
    return shapes_from_header(read_safetensors_header(info.path))


def adapter_fit(info: ModelInfo, shapes: dict[str, tuple[int, ...]]) -> AdapterFit:
    """Which encoder `info` needs, from its ``image_proj`` shapes."""
    if "image_proj.proj.weight" in shapes:
        return AdapterFit(info, "projection", int(shapes["image_proj.proj.weight"][-1]))
    if "image_proj.proj_in.weight" in shapes:
        return AdapterFit(info, "hidden", int(shapes["image_proj.proj_in.weight"][-1]))
    if "image_proj.proj.0.weight" in shapes:
        return AdapterFit(info, "hidden", int(shapes["image_proj.proj.0.weight"][-1]))
    raise ModelError(f"IP-Adapter {info.name}: its image projection is not one CanvasAI knows.")


def expected_ip_layers(unet: Any) -> list[tuple[int, int]]:
    """(hidden, cross-attention width) of each cross-attention layer, in the order
    diffusers numbers an IP-Adapter's ``ip_adapter.1.*``, ``.3.*``, ... keys."""
    cfg = unet.config
    out = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or "motion_modules" in name:
            continue
        if name.startswith("mid_block"):
            hidden = cfg.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(cfg.block_out_channels))[int(name.split(".")[1])]
        else:
            hidden = cfg.block_out_channels[int(name.split(".")[1])]
        out.append((int(hidden), int(cfg.cross_attention_dim)))
    return out


def check_adapter_fits(info: ModelInfo, shapes: dict[str, tuple[int, ...]], loaded: LoadedModel) -> None:
    """Refuse an IP-Adapter of another family, or one whose layers do not fit the UNet."""
    fam = loaded.info.family
    if info.family not in (fam, UNKNOWN):
        other = families.label(info.family)
        raise ModelError(
            f"IP-Adapter {info.name} is for {other} models; {loaded.info.name} is a "
            f"{loaded.family.label} model. Choose an IP-Adapter for {loaded.family.label}."
        )
    want = expected_ip_layers(loaded.pipe.unet)
    have = []
    i = 1
    while f"ip_adapter.{i}.to_k_ip.weight" in shapes:
        k = shapes[f"ip_adapter.{i}.to_k_ip.weight"]
        have.append((int(k[0]), int(k[-1])) if len(k) == 2 else (0, 0))
        i += 2
    if have != want:
        cross = have[0][1] if have else 0
        guess = models._IP_CROSS_FAMILY.get(cross)
        made_for = f"{families.label(guess)} models" if guess else f"a cross-attention width of {cross}"
        raise ModelError(
            f"IP-Adapter {info.name} does not fit {loaded.info.name} ({loaded.family.label}, "
            f"cross-attention width {want[0][1] if want else '?'}): it was made for {made_for}."
        )


def _missing_adapter(loaded: LoadedModel, manager: PipelineManager) -> ModelError:
    fam = loaded.info.family
    file, source = _IP_HINTS.get(fam, ("an IP-Adapter", ""))
    where = _models_dir(manager)
    enc = _ENCODER_NAMES[1024]
    return ModelError(
        f"Reference images with {loaded.family.label} models need an IP-Adapter, and none for "
        f"{loaded.family.label} is installed. Put {file} ({source}) in {where / 'ipadapter'} "
        f"and its image encoder, {enc}, in {where / 'clip_vision'}; then refresh the models."
    )


def _models_dir(manager: PipelineManager) -> Path:
    dirs = list(getattr(manager.registry, "models_dirs", []) or [])
    return Path(dirs[0]) if dirs else models.default_models_dir()


def resolve_adapter(manager: PipelineManager, loaded: LoadedModel, ref: ReferenceImage) -> AdapterFit:
    """The IP-Adapter for `ref` (its own choice, or the best installed one), checked."""
    reg = manager.registry
    if ref.model:
        info = reg.resolve(ref.model)
        if info.kind == REDUX:
            raise ModelError(f"{info.name} is Flux Redux, for Flux.1 models; "
                             f"{loaded.info.name} ({loaded.family.label}) takes an IP-Adapter.")
        if info.kind != IPADAPTER:
            raise ModelError(f"{describe(info)} is not an IP-Adapter.")
        shapes = adapter_shapes(info)
        check_adapter_fits(info, shapes, loaded)
        return adapter_fit(info, shapes)
    fam = loaded.info.family
    candidates = [m for m in reg.models() if m.kind == IPADAPTER and m.usable]
    order = {"": 0, "plus": 1, "full": 2}
    candidates.sort(key=lambda m: (m.family != fam, order.get(m.variant, 3), m.name))
    wrong = None
    for info in candidates:
        if info.family not in (fam, UNKNOWN):
            wrong = wrong or info
            continue
        try:
            shapes = adapter_shapes(info)
            check_adapter_fits(info, shapes, loaded)
            return adapter_fit(info, shapes)
        except ModelError as exc:
            log.info("IP-Adapter %s skipped: %s", info.name, exc)
    raise _missing_adapter(loaded, manager)


def encoder_widths(info: ModelInfo) -> tuple[int, int, int]:
    """(projection width, hidden width, image size) of an image encoder (0 when unknown)."""
    if info.format == "diffusers":
        cfg = models._read_json(info.path / "config.json")
        vision = cfg.get("vision_config") if isinstance(cfg.get("vision_config"), dict) else cfg
        proj = cfg.get("projection_dim", 0) if info.variant == "clip" else 0
        return int(proj or 0), int(vision.get("hidden_size", 0)), int(vision.get("image_size", 224))
    shapes = shapes_from_header(read_safetensors_header(info.path))
    cfg = vision_config_from_shapes(shapes, info.variant)
    return int(cfg.get("projection_dim", 0)), int(cfg["hidden_size"]), int(cfg["image_size"])


def vision_config_from_shapes(shapes: dict[str, tuple[int, ...]], kind: str) -> dict[str, Any]:
    """A transformers vision config for a single-file CLIP / SigLIP encoder, from its shapes.

    Head counts cannot be read from weights: 12 for the 768-wide ViT-B, 16 for the others
    people use (ViT-L, ViT-H, ViT-bigG, SigLIP so400m)."""
    pre = "vision_model."
    patch = shapes.get(pre + "embeddings.patch_embedding.weight")
    pos = shapes.get(pre + "embeddings.position_embedding.weight")
    fc1 = shapes.get(pre + "encoder.layers.0.mlp.fc1.weight")
    if not patch or len(patch) != 4 or not pos or not fc1:
        raise ModelError("This image encoder file is not in the transformers layout CanvasAI reads.")
    hidden, p = int(patch[0]), int(patch[2])
    layers = 0
    while f"{pre}encoder.layers.{layers}.mlp.fc1.weight" in shapes:
        layers += 1
    tokens = int(pos[0]) - (1 if kind == "clip" else 0)
    grid = int(round(math.sqrt(max(tokens, 1))))
    size = 384 if (kind == "siglip" and p == 14 and grid == 27) else grid * p
    cfg: dict[str, Any] = {
        "hidden_size": hidden,
        "intermediate_size": int(fc1[0]),
        "num_hidden_layers": layers,
        "num_attention_heads": 12 if hidden == 768 else (16 if hidden % 16 == 0 else 1),
        "patch_size": p,
        "image_size": size,
    }
    if kind == "clip":
        proj = shapes.get("visual_projection.weight")
        cfg["projection_dim"] = int(proj[0]) if proj else hidden
        openai_l = hidden == 1024 and layers == 24 and cfg["projection_dim"] == 768
        cfg["hidden_act"] = "quick_gelu" if openai_l else "gelu"
    else:
        cfg["vision_use_head"] = any(k.startswith(pre + "head.") for k in shapes)
    return cfg


def find_encoder(manager: PipelineManager, fit: AdapterFit, kind: str = "clip") -> ModelInfo | None:
    """The installed image encoder an adapter needs: one beside it first (h94's layout)."""
    cands = [m for m in manager.registry.models()
             if m.kind == IMAGE_ENCODER and m.usable and m.variant == kind]
    home = fit.info.path.parent
    cands.sort(key=lambda m: (not _is_under(m.path, home), m.name))
    for m in cands:
        try:
            proj, hidden, _size = encoder_widths(m)
        except (ModelError, KeyError, TypeError, ValueError) as exc:
            log.info("image encoder %s skipped: %s", m.name, exc)
            continue
        if (fit.needs == "projection" and proj == fit.width) or (fit.needs == "hidden" and hidden == fit.width):
            return m
    return None


def _is_under(p: Path, folder: Path) -> bool:
    try:
        return os.path.commonpath([str(p), str(folder)]) == str(folder)
    except ValueError:
        return False


def _missing_encoder(manager: PipelineManager, fit: AdapterFit, kind: str = "clip") -> ModelError:
    width = fit.width if fit.needs == "projection" else _ENCODER_BY_HIDDEN.get(fit.width, 0)
    name = _ENCODER_NAMES.get(width) or (
        f"a {kind.upper()} vision encoder with {fit.width}-wide "
        f"{'image embeddings' if fit.needs == 'projection' else 'patch features'}"
    )
    where = _models_dir(manager) / "clip_vision"
    return ModelError(
        f"{fit.info.name} needs its image encoder, {name}, and it is not installed. "
        f"Put it in {where} (or an image_encoder folder beside the adapter); then refresh the models."
    )


def load_encoder(manager: PipelineManager, info: ModelInfo) -> _Encoder:
    """A CLIP or SigLIP vision encoder (diffusers/transformers folder or single file)."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from canvasai.backends.diffusion.pipelines import _diffusers, dtype_kwargs

    _diffusers()  # quiet progress bars
    dev = manager.device
    clip = info.variant == "clip"
    cls = CLIPVisionModelWithProjection if clip else SiglipVisionModel
    try:
        if info.format == "diffusers":
            model = cls.from_pretrained(info.path, local_files_only=True, use_safetensors=True,
                                        **dtype_kwargs(dev.dtype))
        else:
            from safetensors.torch import load_file

            shapes = shapes_from_header(read_safetensors_header(info.path))
            cfg_cls = CLIPVisionConfig if clip else SiglipVisionConfig
            cfg = cfg_cls(**vision_config_from_shapes(shapes, info.variant))
            state = load_file(str(info.path))
            model = cls.from_pretrained(None, config=cfg, state_dict=state, **dtype_kwargs(dev.dtype))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad files, wrong shapes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"Could not load the image encoder {info.name}: {first}") from exc
    model = model.to(torch.device(dev.device)).eval()
    size = int(model.config.image_size)
    if clip:
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor(size=size, crop_size=size)
    else:
        from transformers import SiglipImageProcessor

        processor = SiglipImageProcessor(size={"height": size, "width": size})
    return _Encoder(str(info.path), model, processor)


def read_ip_adapter(path: Path, dtype: Any, device: str) -> dict[str, dict[str, Any]]:
    """An IP-Adapter file as the ``{"image_proj": ..., "ip_adapter": ...}`` dict diffusers takes."""
    from safetensors.torch import load_file

    out: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in load_file(str(path)).items():
        head, _, rest = key.partition(".")
        if head in out:
            out[head][rest] = tensor.to(device=device, dtype=dtype)
    return out


def _plan_ip_adapter(
    manager: PipelineManager, loaded: LoadedModel, refs: tuple[ReferenceImage, ...], plan: Any, st: Any
) -> None:
    """Load (or keep) the adapters and encoder `refs` need; fill in `plan` (a `references.Plan`).

    `st` is `references`' per-model state (adapter slots, encoder, pipelines given it)."""
    fits = [resolve_adapter(manager, loaded, r) for r in refs]  # all checked before loading
    needs = {(f.needs, f.width) for f in fits}
    if len(needs) > 1:
        names = ", ".join(sorted({f.info.name for f in fits}))
        raise ModelError(f"The IP-Adapters {names} need different image encoders and cannot be "
                         "used in one job: choose adapters of one kind for all reference images.")
    enc_info = find_encoder(manager, fits[0])
    if enc_info is None:
        raise _missing_encoder(manager, fits[0])
    slots = tuple(str(f.info.path) for f in fits)
    pipe = loaded.pipe
    if _sliced(pipe.unet):  # an out-of-memory step-down replaced the attention processors
        pipe.disable_attention_slicing()
        if st.ip_slots:  # the adapters' processors went with them: load them again
            pipe.unload_ip_adapter()
            st.ip_slots = ()
        plan.notes.append("attention slicing is off while IP-Adapters are used (they need the "
                          "full attention processors)")
    if st.encoder is None or st.encoder.path != str(enc_info.path):
        encoder = load_encoder(manager, enc_info)
    else:
        encoder = st.encoder
    if st.ip_slots != slots:
        if st.ip_slots:
            pipe.unload_ip_adapter()
            st.ip_slots = ()
        unet = pipe.unet
        dicts = {p: read_ip_adapter(Path(p), unet.dtype, unet.device) for p in set(slots)}
        pipe.register_modules(image_encoder=encoder.model, feature_extractor=encoder.processor)
        st.pipes.add(pipe)
        try:
            pipe.load_ip_adapter([dicts[p] for p in slots], subfolder=[""] * len(slots),
                                 weight_name=[Path(p).name for p in slots], image_encoder_folder=None)
        except Exception as exc:  # noqa: BLE001 - shapes the checks did not foresee
            pipe.unload_ip_adapter()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"IP-Adapter {fits[0].info.name} could not be loaded: {first}") from exc
        st.ip_slots = slots
    st.encoder = encoder
    plan.method, plan.refs = IP_ADAPTER, refs
    plan.scales = []
    for ref in refs:
        scale, note = block_scales(loaded, ref)
        plan.scales.append(scale)
        if note and note not in plan.notes:
            plan.notes.append(note)
    plan.meta = {
        "reference_images": [_describe_ref(r, f.info.name) for r, f in zip(refs, fits, strict=True)],
        "reference_method": "IP-Adapter",
        "image_encoder": enc_info.name,
    }


def _sliced(unet: Any) -> bool:
    """True when attention slicing replaced the UNet's processors (IP-Adapters cannot run so)."""
    return any(type(p).__name__.startswith("Sliced") for p in unet.attn_processors.values())


def block_scales(loaded: LoadedModel, ref: ReferenceImage) -> tuple[Any, str]:
    """The IP-Adapter scale config for `ref` (InstantStyle's blocks for style and
    composition), and a note when the kind is not supported for this family."""
    s = float(ref.strength)
    if ref.kind == ReferenceKind.CONTENT:
        return s, ""
    unet = loaded.pipe.unet
    downs = [i for i, b in enumerate(unet.down_blocks) if hasattr(b, "attentions")]
    ups = [i for i, b in enumerate(unet.up_blocks) if hasattr(b, "attentions")]
    per_down = int(unet.config.layers_per_block if isinstance(unet.config.layers_per_block, int)
                   else unet.config.layers_per_block[0])
    per_up = per_down + 1
    xl = loaded.info.family == "sdxl"
    if ref.kind == ReferenceKind.STYLE and ups:
        if xl:  # up_blocks.0.attentions.1
            row = [0.0] * per_up
            row[min(1, per_up - 1)] = s
            return {"up": {f"block_{ups[0]}": row}}, ""
        # SD 1.x: InstantStyle's experimental style block, the first attention-bearing up block
        return {"up": {f"block_{ups[0]}": s}}, (
            "style references on SD 1.x follow InstantStyle's experimental SD 1.5 block "
            "(weaker than on SDXL)"
        )
    if ref.kind == ReferenceKind.COMPOSITION and xl and downs:
        row = [0.0] * per_down  # down_blocks.2.attentions.1
        row[min(1, per_down - 1)] = s
        return {"down": {f"block_{downs[-1]}": row}}, ""
    return s, (f"{ref.kind.value} references are not supported for {loaded.family.label} "
               "models: used as content references")
