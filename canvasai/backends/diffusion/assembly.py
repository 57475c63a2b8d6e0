"""Build a pipeline from split files: a transformer file (safetensors or GGUF-quantized)
plus text-encoder and VAE files.

This is how ComfyUI users keep the DiT families (``diffusion_models/flux1-dev.safetensors``,
``text_encoders/t5xxl_fp16.safetensors``, ``vae/ae.safetensors``). The registry pairs the
files (`canvasai.backends.models.pair_parts`); here they are loaded, fully offline:

- the transformer with diffusers' ``from_single_file`` (its converters understand the
  original key layouts), configured from a local folder;
- each VAE the same way (original layouts convert too);
- each text encoder (a transformers state dict, as ComfyUI ships them) into a model
  built from its local config, refusing a file whose tensors do not fit;
- tokenizers and scheduler from the same local folder.

The local folder (a diffusers layout with configs and tokenizers, weights optional) is,
in order: ``<file>.config`` beside the transformer; ``<family>-<variant>`` or
``<family>`` under the model-configs folder; a diffusers folder of the same family the
registry found (e.g. in the Hugging Face cache). Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from canvasai.backends.device import DeviceChoice
from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.tokenizer_loading import folder_tokenizers
from canvasai.backends.models import ModelInfo, ModelRegistry, pipeline_components
from canvasai.core.errors import ModelError


def config_source(info: ModelInfo, registry: ModelRegistry | None) -> Path:
    """The local diffusers-layout folder that configures `info`'s split files."""
    from canvasai.backends.diffusion.pipelines import configs_root

    sidecar = info.path.with_suffix(".config")
    candidates = [sidecar]
    root = configs_root()
    if info.variant:
        candidates.append(root / f"{info.family}-{info.variant}")
    candidates.append(root / info.family)
    for c in candidates:
        if (c / "model_index.json").is_file():
            return c
    if registry is not None:
        same = [
            m
            for m in registry.models()
            if m.family == info.family and m.format == "diffusers" and m.usable
        ]
        same.sort(key=lambda m: m.variant != info.variant)
        for m in same:
            if (m.path / "model_index.json").is_file():
                return m.path
    fam = families.get(info.family)
    raise ModelError(
        f"{info.name}: to run split {fam.label} files CanvasAI needs the model's configuration "
        f"and tokenizers, which are not in the files themselves. Put the diffusers version of "
        f"this model in the models folder or the Hugging Face cache (it is then found "
        f"automatically), or a config-only copy of it in {sidecar}."
    )


def _component_class(config: Path, role: str) -> tuple[str, str]:
    entry = pipeline_components(config).get(role)
    if entry is None:
        raise ModelError(f"{config}: model_index.json has no {role}.")
    return entry


def load_text_encoder(cls_name: str, config_dir: Path, file: Path, dtype: Any) -> Any:
    """A transformers text encoder from a bare weights file (as ComfyUI keeps them) and a
    local config, through transformers' own loading (so its key renames for older
    checkpoint layouts apply). The file is linked, never copied, into a scratch folder
    beside the config. A file whose tensors do not fit is refused, naming the file."""
    import tempfile

    import transformers

    cls = getattr(transformers, cls_name, None)
    if cls is None:
        raise ModelError(f"This transformers has no {cls_name} (needed for {file.name}).")
    with tempfile.TemporaryDirectory(prefix="canvasai-encoder-") as tmp:
        folder = Path(tmp)
        for name in ("config.json", "generation_config.json"):
            if (config_dir / name).is_file():
                shutil.copyfile(config_dir / name, folder / name)
        _link(file, folder / "model.safetensors")
        try:
            model, info = cls.from_pretrained(
                folder, dtype=dtype, local_files_only=True, output_loading_info=True
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{file.name} could not be loaded as a {cls_name}: {exc}") from exc
    missing = [k for k in info.get("missing_keys", ()) if not _tied(k)]
    wrong = list(info.get("mismatched_keys", ()))
    if missing or wrong:
        example = missing[0] if missing else wrong[0][0]
        raise ModelError(
            f"{file.name} does not fit a {cls_name} ({len(missing)} weights missing, "
            f"{len(wrong)} of the wrong size, e.g. {example}). Is it the right text encoder "
            "for this model?"
        )
    return model.eval().requires_grad_(False)


def _link(src: Path, dest: Path) -> None:
    """`dest` pointing at `src` without copying gigabytes: a symbolic link, else a hard link
    (Windows without the symlink privilege), else a copy as the last resort."""
    try:
        dest.symlink_to(src.resolve())
        return
    except OSError:
        pass
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _tied(key: str) -> bool:
    return key.endswith(("lm_head.weight", "embed_tokens.weight")) or "position_ids" in key


def _load_vae(cls: Any, config: Path, role: str, file: Path, dk: dict[str, Any]) -> Any:
    """A VAE from one file: diffusers' converter where it has one (AutoencoderKL reads the
    original layouts), else the file's diffusers-named weights into the configured model
    (Flux.2's and Qwen-Image's VAEs have no single-file converter in diffusers)."""
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    if cls.__name__ in SINGLE_FILE_LOADABLE_CLASSES:
        return cls.from_single_file(
            str(file), config=str(config), subfolder=role, local_files_only=True, **dk
        )
    from safetensors.torch import load_file

    model = cls.from_config(cls.load_config(config / role))
    state = load_file(str(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise ModelError(
            f"{file.name} does not fit a {cls.__name__}: {len(missing)} weights are missing "
            f"(e.g. {missing[0]}). Is it this model's VAE?"
        )
    dtype = dk.get("dtype", dk.get("torch_dtype"))
    return (model.to(dtype=dtype) if dtype is not None else model).eval()


def load_split(cls: Any, info: ModelInfo, dev: DeviceChoice, registry: ModelRegistry | None) -> Any:
    """Pipeline class `cls` built from `info`'s transformer file and paired part files."""
    import diffusers

    from canvasai.backends.diffusion.pipelines import dtype_kwargs

    fam = families.get(info.family)
    config = config_source(info, registry)
    dk = dtype_kwargs(dev.dtype)
    tcls = getattr(diffusers, fam.transformer_class)
    quant: dict[str, Any] = {}
    if info.format == "gguf":
        try:
            import gguf  # noqa: F401
        except ImportError as exc:
            raise ModelError(
                f"{info.name} is a GGUF file: install the 'gguf' package to run it."
            ) from exc
        quant = {"quantization_config": diffusers.GGUFQuantizationConfig(compute_dtype=dev.dtype)}
    parts: dict[str, Any] = {
        "transformer": tcls.from_single_file(
            str(info.path),
            config=str(config),
            subfolder="transformer",
            local_files_only=True,
            **dk,
            **quant,
        )
    }
    for role, path in info.parts:
        lib, name = _component_class(config, role)
        if lib == "diffusers":
            parts[role] = _load_vae(getattr(diffusers, name), config, role, Path(path), dk)
        else:
            parts[role] = load_text_encoder(name, config / role, Path(path), dev.dtype)
    extra = folder_tokenizers(config) | families.get(info.family).load_kwargs(config)
    return cls.from_pretrained(config, local_files_only=True, **dk, **parts, **extra)
