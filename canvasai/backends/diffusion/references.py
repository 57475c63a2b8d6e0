"""Reference images in generate / refine / inpaint / outpaint / sketch jobs.

What a model family does with `request.references` (`Family.reference_method`):

- ``"ip_adapter"`` (SD 1.x, SDXL): an IP-Adapter through diffusers' loaders
  (``load_ip_adapter`` with a state dict read from the local file, the CLIP image
  encoder registered on the pipeline first). Each reference gets its own adapter slot,
  so each has its own scale: its strength (CONTENT), or InstantStyle's per-block scales
  (STYLE: the first attention-bearing up block; COMPOSITION on SDXL: the last
  attention-bearing down block). SD 1.x has no composition block: such a reference is
  used as content, and the result's note says so. The adapters stay loaded while the
  same files are asked for; a job without references unloads them (the UNet gets its
  plain attention processors back).
- ``"redux"`` (Flux.1): Flux Redux. `FluxPriorReduxPipeline`'s SigLIP encoder and
  Redux embedder turn each reference into tokens appended to the prompt's T5 tokens
  (ComfyUI's way), each multiplied by its strength; the Flux pipeline receives
  ``prompt_embeds`` / ``pooled_prompt_embeds`` instead of the prompt.
- ``"image"`` (Flux.2 Klein): the references go in as images (``image=`` for generate,
  ``image_reference=`` for the inpaint pipeline). Klein has no strength for them.
- Any other family: the references are not used and the result's note says so.

Edit jobs read references in `edit.py` (the edit models' own inputs). A reference of
strength 0 is left out, so it gives exactly the picture without it.

Adapters and encoders are found in the models folders (ComfyUI ``ipadapter/``,
``clip_vision/``, ``style_models/``; h94/IP-Adapter's ``models/`` and ``sdxl_models/``
with their ``image_encoder/``; a FLUX.1-Redux-dev diffusers folder). A missing one is
named with where to put it; an adapter of another family (or whose layer sizes do not
fit the UNet) is refused before anything is loaded.

Flow: `prepare` (once per job, before the task module, from the backend) loads or
unloads what the job needs; the task modules pass their pipeline arguments through
`apply` right before running the pipeline. Torch/diffusers are imported lazily.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import GenerationRequest, ReferenceImage, ReferenceKind, Task
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

#: tasks whose pipelines read reference images here (Edit reads them in edit.py)
REFERENCE_TASKS = frozenset({Task.TXT2IMG, Task.IMG2IMG, Task.INPAINT, Task.OUTPAINT, Task.SKETCH})

IP_ADAPTER, REDUX_METHOD, IMAGE_METHOD = "ip_adapter", "redux", "image"

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


# ----------------------------------------------------------------------------------- state


@dataclass
class Plan:
    """What one job does with its references (made by `prepare`)."""

    method: str = ""  # IP_ADAPTER | REDUX_METHOD | IMAGE_METHOD | "" (none used)
    refs: tuple[ReferenceImage, ...] = ()  # the ones used, in order
    scales: list[Any] = field(default_factory=list)  # IP-Adapter: one scale config per slot
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    request_key: int = 0  # id() of the request it was made for


@dataclass
class _Encoder:
    path: str
    model: Any
    processor: Any


@dataclass
class _State:
    """Per loaded model: the adapters in its UNet, the encoders, the Redux pipeline."""

    ip_slots: tuple[str, ...] = ()  # adapter files loaded into the UNet, one per slot
    encoder: _Encoder | None = None
    redux: tuple[str, Any] | None = None  # (path, FluxPriorReduxPipeline)
    plan: Plan | None = None
    pipes: Any = field(default_factory=weakref.WeakSet)  # pipelines given the encoder


_states: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


def _state(loaded: LoadedModel) -> _State:
    st = _states.get(loaded.pipe)
    if st is None:
        st = _states[loaded.pipe] = _State()
    return st


def loaded_adapters(loaded: LoadedModel) -> tuple[str, ...]:
    """The IP-Adapter files in `loaded`'s UNet now (one per slot; empty: none)."""
    st = _states.get(loaded.pipe)
    return st.ip_slots if st is not None else ()


# --------------------------------------------------------------------------------- planning


def prepare(manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest) -> Plan:
    """Load (or keep, or unload) what `request`'s references need on `loaded`; the plan.

    Called once per job before the task module runs. Raises `ModelError` for a missing
    or unfitting adapter, before anything is loaded."""
    st = _state(loaded)
    refs = tuple(r for r in request.references if r.strength > 0)
    method = loaded.family.reference_method
    plan = Plan(request_key=id(request))
    if request.references and request.task == Task.UPSCALE:
        plan.notes.append("reference images are not used when upscaling")
    if request.task not in REFERENCE_TASKS or not refs:
        release(loaded)
        st.plan = plan
        return plan
    dropped = len(request.references) - len(refs)
    if dropped:
        plan.notes.append(f"{dropped} reference image(s) of strength 0 left out")
    if method == IP_ADAPTER:
        _plan_ip_adapter(manager, loaded, refs, plan)
    elif method == REDUX_METHOD:
        release(loaded, keep_redux=True)
        _plan_redux(manager, loaded, refs, plan)
    elif method == IMAGE_METHOD:
        release(loaded)
        fam = loaded.family
        used = refs[: fam.max_references] if fam.max_references else refs
        if len(used) < len(refs):
            plan.notes.append(f"{fam.label} reads {len(used)} reference images: the others were not used")
        plan.method, plan.refs = IMAGE_METHOD, used
        if any(r.strength != 1.0 or r.kind != ReferenceKind.CONTENT for r in used):
            plan.notes.append(f"{fam.label} reads reference images as they are: their strength "
                              "and style/composition setting are not used")
        plan.meta = {"reference_images": [_describe_ref(r, "") for r in used],
                     "reference_method": "image inputs"}
    else:
        release(loaded)
        plan.notes.append(
            f"{loaded.family.label} models take no reference images here: they were not used "
            "(IP-Adapter works with SD 1.x/SDXL, Flux Redux with Flux.1; edit models read "
            "references in Edit)"
        )
    st.plan = plan
    return plan


def release(loaded: LoadedModel, keep_redux: bool = False) -> None:
    """Unload the IP-Adapters from `loaded`'s UNet (and Redux unless `keep_redux`)."""
    st = _states.get(loaded.pipe)
    if st is None:
        return
    if st.ip_slots:
        try:
            loaded.pipe.unload_ip_adapter()
        finally:
            st.ip_slots = ()
    for pipe in list(st.pipes):
        if getattr(pipe, "image_encoder", None) is not None:
            pipe.register_modules(image_encoder=None)
    st.pipes = weakref.WeakSet()
    st.encoder = None
    if not keep_redux:
        st.redux = None


def _describe_ref(ref: ReferenceImage, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ref.kind.value, "strength": float(ref.strength)}
    if model:
        out["model"] = model
    return out


def readiness(registry: models.ModelRegistry, family: str) -> str:
    """"" when `family`'s models can use reference images with what is installed, else a
    sentence saying what is missing or that the family takes none. Reads only the last
    scan (no files, no torch): cheap enough for the panel to ask before Generate."""
    from canvasai.backends.diffusion import families

    fam = families.find(family)
    method = fam.reference_method if fam is not None else ""
    label = fam.label if fam is not None else family
    usable = [m for m in registry.models() if m.usable]
    if method == IP_ADAPTER:
        if not any(m.kind == IPADAPTER and m.family in (family, UNKNOWN) for m in usable):
            file, _source = _IP_HINTS.get(family, ("an IP-Adapter", ""))
            return (f"Reference images with {label} models need an IP-Adapter ({file}) in the "
                    "models folder's ipadapter/ and its CLIP image encoder in clip_vision/.")
        if not any(m.kind == IMAGE_ENCODER and m.variant == "clip" for m in usable):
            return "The IP-Adapter needs its CLIP image encoder (ViT-H or ViT-bigG) in clip_vision/."
        return ""
    if method == REDUX_METHOD:
        redux = [m for m in usable if m.kind == REDUX]
        if not redux:
            return ("Reference images with Flux.1 models need Flux Redux (flux1-redux-dev."
                    "safetensors in style_models/ and its SigLIP encoder in clip_vision/).")
        if any((m.path / "model_index.json").is_file() for m in redux if m.format == "diffusers"):
            return ""
        if not any(m.kind == IMAGE_ENCODER and m.variant == "siglip" for m in usable):
            return ("Flux Redux needs its SigLIP image encoder (sigclip_vision_patch14_384."
                    "safetensors) in clip_vision/.")
        return ""
    if method == IMAGE_METHOD:
        return ""
    return f"{label} models take no reference images (only in Edit, with an edit model)."


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
        other = _family_label(info.family)
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
        made_for = f"{_family_label(guess)} models" if guess else f"a cross-attention width of {cross}"
        raise ModelError(
            f"IP-Adapter {info.name} does not fit {loaded.info.name} ({loaded.family.label}, "
            f"cross-attention width {want[0][1] if want else '?'}): it was made for {made_for}."
        )


def _family_label(name: str | None) -> str:
    from canvasai.backends.diffusion import families

    fam = families.find(name or "")
    return fam.label if fam is not None else (name or "unknown")


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
    manager: PipelineManager, loaded: LoadedModel, refs: tuple[ReferenceImage, ...], plan: Plan
) -> None:
    st = _state(loaded)
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


# ----------------------------------------------------------------------------------- Redux


def _missing_redux(manager: PipelineManager) -> ModelError:
    where = _models_dir(manager)
    return ModelError(
        "Reference images with Flux.1 models need Flux Redux, and it is not installed. Put "
        f"flux1-redux-dev.safetensors in {where / 'style_models'} and its SigLIP image encoder "
        f"sigclip_vision_patch14_384.safetensors in {where / 'clip_vision'} (ComfyUI's layout), "
        f"or the black-forest-labs/FLUX.1-Redux-dev folder in {where}; then refresh the models."
    )


def resolve_redux(manager: PipelineManager, loaded: LoadedModel, refs: tuple[ReferenceImage, ...]) -> ModelInfo:
    chosen = {r.model for r in refs if r.model}
    if len(chosen) > 1:
        raise ModelError("All reference images of a Flux.1 job use one Redux model: choose one.")
    if chosen:
        info = manager.registry.resolve(chosen.pop())
        if info.kind == IPADAPTER:
            raise ModelError(
                f"IP-Adapter {info.name} is for {_family_label(info.family)} models; "
                f"{loaded.info.name} is a Flux.1 model, which takes Flux Redux."
            )
        if info.kind != REDUX:
            raise ModelError(f"{describe(info)} is not a Flux Redux model.")
        return info
    info = manager.registry.find(REDUX, family="flux")
    if info is None:
        raise _missing_redux(manager)
    return info


def load_redux(manager: PipelineManager, info: ModelInfo) -> Any:
    """A `FluxPriorReduxPipeline` (image encoder + Redux embedder, no text encoders)."""
    import torch

    from canvasai.backends.diffusion.pipelines import _diffusers, dtype_kwargs

    d = _diffusers()
    dev = manager.device
    if info.format == "diffusers" and (info.path / "model_index.json").is_file():
        try:
            pipe = d.FluxPriorReduxPipeline.from_pretrained(
                info.path, local_files_only=True, use_safetensors=True, **dtype_kwargs(dev.dtype)
            )
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"Could not load Flux Redux {info.name}: {first}") from exc
        pipe.to(torch.device(dev.device))
        pipe.set_progress_bar_config(disable=True)
        return pipe
    try:
        if info.format == "diffusers":
            embedder = d.ReduxImageEncoder.from_pretrained(
                info.path, local_files_only=True, use_safetensors=True, **dtype_kwargs(dev.dtype))
        else:
            from safetensors.torch import load_file

            state = load_file(str(info.path))
            up = state["redux_up.weight"]
            embedder = d.ReduxImageEncoder(redux_dim=int(up.shape[1]),
                                           txt_in_features=int(state["redux_down.weight"].shape[0]))
            embedder.load_state_dict(state)
            embedder = embedder.to(dtype=dev.dtype)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"Could not load Flux Redux {info.name}: {first}") from exc
    width = int(embedder.config.redux_dim)
    fit = AdapterFit(info, "hidden", width)
    enc_info = find_encoder(manager, fit, "siglip")
    if enc_info is None:
        where = _models_dir(manager) / "clip_vision"
        raise ModelError(
            f"Flux Redux {info.name} needs its SigLIP image encoder ({width}-wide: "
            f"sigclip_vision_patch14_384.safetensors, google/siglip-so400m-patch14-384), and it is "
            f"not installed. Put it in {where}; then refresh the models."
        )
    enc = load_encoder(manager, enc_info)
    pipe = d.FluxPriorReduxPipeline(image_encoder=enc.model, feature_extractor=enc.processor,
                                    image_embedder=embedder.to(torch.device(dev.device)).eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _plan_redux(
    manager: PipelineManager, loaded: LoadedModel, refs: tuple[ReferenceImage, ...], plan: Plan
) -> None:
    st = _state(loaded)
    info = resolve_redux(manager, loaded, refs)
    if st.redux is None or st.redux[0] != str(info.path):
        st.redux = None
        st.redux = (str(info.path), load_redux(manager, info))
    redux = st.redux[1]
    text_width = int(loaded.pipe.transformer.config.joint_attention_dim)
    out_width = int(redux.image_embedder.config.txt_in_features)
    if out_width != text_width:
        raise ModelError(
            f"Flux Redux {info.name} makes {out_width}-wide tokens but {loaded.info.name} reads "
            f"{text_width}-wide text tokens: it is for another model."
        )
    if any(r.kind != ReferenceKind.CONTENT for r in refs):
        plan.notes.append("Flux Redux has no style or composition mode: those references were "
                          "used as content references")
    plan.method, plan.refs = REDUX_METHOD, refs
    plan.meta = {"reference_images": [_describe_ref(r, info.name) for r in refs],
                 "reference_method": "Flux Redux"}


# -------------------------------------------------------------------------------- applying


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


def _fit_area(img: np.ndarray, area: int, min_side: int, multiple: int) -> np.ndarray:
    """`img` scaled (aspect kept) to about `area` pixels, sides multiples of `multiple`."""
    import cv2

    h, w = img.shape[:2]
    f = math.sqrt(area / float(w * h)) if area else 1.0
    nw = max(min_side, multiple, int(round(w * f / multiple)) * multiple)
    nh = max(min_side, multiple, int(round(h * f / multiple)) * multiple)
    if (nw, nh) == (w, h):
        return img
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LANCZOS4
    return cv2.resize(img, (nw, nh), interpolation=interp)


def apply(
    manager: PipelineManager,
    loaded: LoadedModel,
    pipe: Any,
    request: GenerationRequest,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """`kwargs` for running `pipe` with `request`'s references (unchanged when none).

    Call right before the pipeline runs (after LoRAs, before regional prompts).
    """
    st = _state(loaded)
    plan = st.plan
    if plan is None or plan.request_key != id(request):
        plan = prepare(manager, loaded, request)
    if not plan.refs:
        return kwargs
    if plan.method == IP_ADAPTER:
        assert st.encoder is not None
        if getattr(pipe, "image_encoder", None) is not st.encoder.model:
            pipe.register_modules(image_encoder=st.encoder.model, feature_extractor=st.encoder.processor)
            st.pipes.add(pipe)
        pipe.set_ip_adapter_scale(list(plan.scales))
        return kwargs | {"ip_adapter_image": [_pil(reference_rgb(r)) for r in plan.refs]}
    if plan.method == REDUX_METHOD:
        return kwargs_with_redux(st, pipe, plan, kwargs)
    if plan.method == IMAGE_METHOD:
        import inspect

        w, h = int(kwargs.get("width") or 0), int(kwargs.get("height") or 0)
        fam = loaded.family
        images = [_pil(_fit_area(reference_rgb(r), w * h, fam.min_reference_side, fam.multiple))
                  for r in plan.refs]
        params = inspect.signature(type(pipe).__call__).parameters
        if "image_reference" in params:
            return kwargs | {"image_reference": images}
        if "image" in params and "image" not in kwargs:
            return kwargs | {"image": images}
        if "image" in params and isinstance(kwargs.get("image"), list):
            return kwargs | {"image": [*kwargs["image"], *images]}
        plan.notes.append(f"{type(pipe).__name__} takes no reference images: they were not used")
        return kwargs
    return kwargs


def redux_tokens(redux: Any, refs: tuple[ReferenceImage, ...], device: Any, dtype: Any) -> Any:
    """Each reference's Redux tokens times its strength, concatenated: 1 x (n*T) x D."""
    import torch

    parts = []
    with torch.inference_mode():
        for r in refs:
            feats = redux.encode_image(_pil(reference_rgb(r)), redux._execution_device, 1)
            tokens = redux.image_embedder(feats).image_embeds
            parts.append(tokens.to(device=device, dtype=dtype) * float(r.strength))
    return torch.cat(parts, dim=1)


def kwargs_with_redux(st: _State, pipe: Any, plan: Plan, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The prompt as embeddings with the references' Redux tokens appended."""
    import torch

    assert st.redux is not None
    with torch.inference_mode():
        prompt_embeds, pooled, _ids = pipe.encode_prompt(
            prompt=kwargs.get("prompt", ""),
            prompt_2=kwargs.get("prompt_2"),
            device=pipe._execution_device,
            num_images_per_prompt=1,
            max_sequence_length=int(kwargs.get("max_sequence_length", 512)),
        )
        tokens = redux_tokens(st.redux[1], plan.refs, prompt_embeds.device, prompt_embeds.dtype)
        embeds = torch.cat([prompt_embeds, tokens], dim=1)
    out = {k: v for k, v in kwargs.items() if k not in ("prompt", "prompt_2")}
    return out | {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}


def finish(loaded: LoadedModel, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """`metadata` with the last job's reference notes and details added; None: nothing to add."""
    st = _states.get(loaded.pipe)
    plan = st.plan if st is not None else None
    if plan is None or (not plan.notes and not plan.meta):
        return None
    meta = dict(metadata)
    if plan.notes:
        meta["note"] = "; ".join([n for n in (meta.get("note"),) if n] + plan.notes)
    meta.update(plan.meta)
    return meta
