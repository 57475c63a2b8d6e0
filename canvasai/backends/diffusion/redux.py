"""Flux Redux: reference images for Flux.1 models.

Its job: find the Redux model (a FLUX.1-Redux-dev diffusers folder, or ComfyUI's
``style_models/`` file with its SigLIP encoder from ``clip_vision/``), load it as a
`FluxPriorReduxPipeline` (SigLIP encoder + Redux embedder, no text encoders), and turn
each reference into tokens appended to the prompt's T5 tokens (ComfyUI's way), each
multiplied by its strength; the Flux pipeline then receives ``prompt_embeds`` /
``pooled_prompt_embeds`` instead of the prompt. A missing model is named with where to
put it; an IP-Adapter chosen for a Flux.1 model, or a Redux of another width, is refused.

`references` (the entry point) calls `_plan_redux` and `kwargs_with_redux` with its
per-model state and the job's plan. The image encoders and shared helpers come from
`ip_adapter`. Torch/diffusers are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canvasai.backends.api import ReferenceImage, ReferenceKind
from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.ip_adapter import (
    AdapterFit,
    _describe_ref,
    _models_dir,
    _pil,
    find_encoder,
    load_encoder,
    reference_rgb,
)
from canvasai.backends.models import IPADAPTER, REDUX, ModelInfo, describe
from canvasai.core.errors import ModelError

if TYPE_CHECKING:
    from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager

#: `Family.reference_method` of the families that take Flux Redux
REDUX_METHOD = "redux"


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
                f"IP-Adapter {info.name} is for {families.label(info.family)} models; "
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
    manager: PipelineManager, loaded: LoadedModel, refs: tuple[ReferenceImage, ...], plan: Any, st: Any
) -> None:
    """Load (or keep) the Redux model `refs` need; fill in `plan` (a `references.Plan`).

    `st` is `references`' per-model state (its ``redux`` is the loaded one)."""
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


def kwargs_with_redux(st: Any, pipe: Any, plan: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The prompt as embeddings with the references' Redux tokens appended (`st`:
    `references`' per-model state; `plan`: the job's `references.Plan`)."""
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
