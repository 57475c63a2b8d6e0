"""Regional prompts for UNet models (SD 1.x, SD 2.x, SDXL) by masked cross-attention.

Each `RegionPrompt` of a request ties a prompt to a mask; the request's own prompt
applies wherever no region covers. `applied(pipe, loaded, request, work, region)` is a
context manager around the pipeline call that

1. encodes every region's prompt (and negative prompt) with the pipeline's own
   ``encode_prompt``, exactly as the pipeline encodes the global prompt;
2. maps each mask through the same crop and resize the task applies to the picture
   (the inpaint context rectangle `region`, the outpaint margins, the work size);
3. wraps the processor of every cross-attention layer of the UNet (and of a
   ControlNet, if the pipeline has one) in a `RegionalAttnProcessor`. At each
   attention resolution it attends once per prompt (the global one first) and blends
   the outputs with per-position weights: the region masks downsampled to that
   resolution (area average of a slightly feathered mask, so edges are soft), divided
   by their sum where regions overlap, and the global prompt taking what is left
   (1 - coverage). The weights sum to 1 everywhere, so with no region (or a region
   whose prompt equals the global one) nothing changes;
4. restores the previous processors when the block ends, also on cancel or error.

A region's prompt replaces the global one inside it (it is not appended to it); SDXL's
pooled text embedding, a whole-picture conditioning, stays the global prompt's. Under
classifier-free guidance the unconditional half attends to each region's negative
prompt (the request's when the region has none).

Composition with other processors. The wrapper keeps the processor it found and calls
it (once per prompt, with that prompt's text states) unless that processor is
diffusers' plain scaled-dot-product one, where it computes the query once and blends
before the output projection (same result, less work). So it composes with what was
installed *before* the block: IP-Adapter processors (their image term is the same for
every prompt and the weights sum to 1, so it passes through unchanged; ``ip_adapter_masks``
are forwarded), sliced or xformers processors. LoRA lives in the linear layers (peft)
and is unaffected. A processor set on a layer *inside* the block (attention slicing by
the out-of-memory step-down, an IP-Adapter loaded mid-job) goes inside the wrapper
instead of replacing it (the block hooks each layer's ``set_processor``), so the regions
keep applying; on exit each layer gets the wrapper's current inner processor back: the
original, or the newer one. Only a processor assigned around that hook would drop the
regions (logged).

The DiT families (Flux, SD3, Z-Image, Qwen-Image, Chroma, Flux.2) do not support
regional prompts yet (`Family.supports_regions` is False): the block does nothing, the
regions are ignored and the result's metadata says so in its note (`describe`), rather
than failing the job: the person's picture is still made from the global prompt, and
the panel can warn beforehand from the same family attribute.

Torch and diffusers are imported lazily (inside functions), like every task module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from canvasai.backends.api import GenerationRequest, RegionPrompt, Task
from canvasai.backends.loras import split_prompt
from canvasai.core.geometry import Rect

if TYPE_CHECKING:
    from canvasai.backends.diffusion.pipelines import LoadedModel

log = logging.getLogger(__name__)

#: tasks whose pipelines run through `applied` (common.generate_at, inpaint.inpaint_images)
REGION_TASKS = (Task.TXT2IMG, Task.IMG2IMG, Task.INPAINT, Task.OUTPAINT, Task.SKETCH)
#: feathering of a region's edge at work size (Gaussian sigma, px) before downsampling
EDGE_SIGMA_PX = 4.0
#: deepest UNet level looked for when matching a sequence length to a resolution
_MAX_LEVELS = 8


# ------------------------------------------------------------------------------ masks (numpy)


def work_masks(
    request: GenerationRequest,
    work: tuple[int, int],
    region: Rect | None = None,
) -> np.ndarray:
    """The request's region masks as the model sees them: (n, work_h, work_w) float32 in [0, 1].

    Masks have the size of the job's output; an outpaint's masks (the size of the
    original picture) are first placed on the grown canvas. `region` is the part of the
    picture the model works on (inpaint's context rectangle); then everything is resized
    to `work` (w, h) and the edge feathered a little.
    """
    ww, wh = int(work[0]), int(work[1])
    out = np.zeros((len(request.regions), wh, ww), np.float32)
    for i, r in enumerate(request.regions):
        m = r.mask.astype(np.float32) / 255.0
        s = request.outpaint
        if s is not None and request.image is not None and m.shape == request.image.shape[:2]:
            m = np.pad(m, ((s.top, s.bottom), (s.left, s.right)))
        if region is not None:
            rows, cols = region.slices()
            m = m[rows, cols]
        if m.size == 0:
            continue
        if m.shape != (wh, ww):
            shrinking = ww * wh < m.shape[0] * m.shape[1]
            m = cv2.resize(m, (ww, wh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        if EDGE_SIGMA_PX > 0:
            m = cv2.GaussianBlur(m, (0, 0), EDGE_SIGMA_PX)
        out[i] = np.clip(m, 0.0, 1.0)
    return out


def blend_weights(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Per-position weights at attention resolution `size` (h, w): (1 + n, h, w) float32.

    Row 0 is the global prompt, row 1 + i region i. Overlapping regions share by their
    coverage; the global prompt gets 1 - total coverage (clipped at 0); rows sum to 1.
    """
    h, w = size
    n = masks.shape[0]
    out = np.zeros((1 + n, h, w), np.float32)
    for i in range(n):
        out[1 + i] = cv2.resize(masks[i], (w, h), interpolation=cv2.INTER_AREA)
    cover = out[1:].sum(axis=0)
    over = cover > 1.0
    if over.any():
        out[1:, over] /= cover[over]
    out[0] = np.clip(1.0 - np.minimum(cover, 1.0), 0.0, 1.0)
    return out


def resolutions(latent: tuple[int, int], levels: int = _MAX_LEVELS) -> dict[int, tuple[int, int]]:
    """Sequence length -> (h, w) of each UNet level for a latent of (h, w): every
    downsample halves a side, rounding up (a stride-2 convolution with padding 1)."""
    h, w = latent
    out: dict[int, tuple[int, int]] = {}
    for _ in range(levels):
        out.setdefault(h * w, (h, w))
        if h == 1 and w == 1:
            break
        h, w = -(-h // 2), -(-w // 2)
    return out


# ---------------------------------------------------------------------------------- metadata


def supported(loaded: LoadedModel) -> bool:
    return bool(loaded.family.supports_regions)


def describe(request: GenerationRequest, loaded: LoadedModel) -> tuple[list[str], dict[str, Any]]:
    """(notes, metadata entries) a result records about the request's regions."""
    if not request.regions:
        return [], {}
    listed = [{"prompt": r.prompt, "negative_prompt": r.negative_prompt} for r in request.regions]
    if not supported(loaded):
        return [
            f"regional prompts ignored: {loaded.family.label} models do not support them yet "
            "(SD 1.x and SDXL do); the global prompt was used everywhere"
        ], {"regions_ignored": listed}
    if request.task not in REGION_TASKS:
        return [f"regional prompts are not used by {request.task.value}"], {"regions_ignored": listed}
    return [], {"regions": listed}


# ------------------------------------------------------------------------------ the processor


class RegionState:
    """What every wrapped cross-attention layer of one job shares: the prompts' text
    states and the masks at work size, with the per-resolution weights cached."""

    def __init__(
        self,
        pipe: Any,
        embeds: Sequence[tuple[Any, Any]],
        masks: np.ndarray,
        latent: tuple[int, int],
    ) -> None:
        self.pipe = pipe
        self.embeds = list(embeds)  # per region: (negative, positive), each 1 x T x D
        self.masks = masks  # (n, work_h, work_w) float32
        self.levels = resolutions(latent)
        self._weights: dict[tuple[int, str, Any], Any] = {}
        self._states: dict[tuple[int, bool, str, Any], list[Any]] = {}
        self.unmatched: set[int] = set()

    def weights_at(self, size: tuple[int, int]) -> np.ndarray:
        """(1 + n, h, w) blend weights at attention resolution `size` (h, w)."""
        return blend_weights(self.masks, size)

    def weights(self, seq_len: int, device: Any, dtype: Any) -> Any | None:
        """(1 + n, 1, seq_len, 1) tensor of blend weights, or None for a sequence length
        that is no resolution of this job (then only the global prompt is used)."""
        import torch

        key = (seq_len, str(device), dtype)
        if key not in self._weights:
            size = self.levels.get(seq_len)
            if size is None:
                if seq_len not in self.unmatched:
                    log.warning("regional prompts: no resolution with %d positions", seq_len)
                    self.unmatched.add(seq_len)
                self._weights[key] = None
            else:
                w = torch.from_numpy(self.weights_at(size).reshape(len(self.embeds) + 1, 1, -1, 1))
                self._weights[key] = w.to(device=device, dtype=dtype)
        return self._weights[key]

    def states(self, text: Any) -> list[Any]:
        """Text states per prompt, global first, laid out like `text` (the batch the
        pipeline passes: negatives then positives under classifier-free guidance)."""
        import torch

        n = int(text.shape[0])
        cfg = bool(getattr(self.pipe, "do_classifier_free_guidance", False)) and n % 2 == 0
        key = (n, cfg, str(text.device), text.dtype)
        if key not in self._states:
            out = []
            for neg, pos in self.embeds:
                parts = [neg.expand(n // 2, -1, -1), pos.expand(n // 2, -1, -1)] if cfg else [
                    pos.expand(n, -1, -1)
                ]
                out.append(torch.cat(parts).to(device=text.device, dtype=text.dtype))
            self._states[key] = out
        return [text, *self._states[key]]


_processor_class: Any = None


def processor_class() -> Any:
    """`RegionalAttnProcessor`, defined on first use (torch is imported lazily).

    It is a ``torch.nn.Module`` so a wrapped processor with weights (IP-Adapter's) stays
    registered under the attention layer: device moves and offload hooks still reach it.
    """
    global _processor_class
    if _processor_class is not None:
        return _processor_class
    import torch
    import torch.nn.functional as F  # noqa: N812
    from diffusers.models.attention_processor import AttnProcessor2_0

    class RegionalAttnProcessor(torch.nn.Module):
        """Cross-attention against each prompt, blended by the region masks."""

        def __init__(self, inner: Any, state: RegionState) -> None:
            super().__init__()
            self.inner = inner
            self.state = state

        def set_inner(self, processor: Any) -> None:
            """Call `processor` from now on (a module one stays registered under us)."""
            self._modules.pop("inner", None)
            self.__dict__.pop("inner", None)
            self.inner = processor

        # an explicit signature: diffusers' Attention passes only the keyword arguments a
        # processor's __call__ names (ip_adapter_masks for IP-Adapter processors)
        def __call__(  # type: ignore[override]
            self,
            attn: Any,
            hidden_states: Any,
            encoder_hidden_states: Any = None,
            attention_mask: Any = None,
            temb: Any = None,
            ip_adapter_masks: Any = None,
        ) -> Any:
            extra: dict[str, Any] = {}
            if temb is not None:
                extra["temb"] = temb
            if ip_adapter_masks is not None:
                extra["ip_adapter_masks"] = ip_adapter_masks
            if encoder_hidden_states is None:  # self-attention: not ours
                return self.inner(attn, hidden_states, attention_mask=attention_mask, **extra)
            text, rest = encoder_hidden_states, ()
            if isinstance(encoder_hidden_states, tuple):  # (text, IP-Adapter image states)
                text, rest = encoder_hidden_states[0], tuple(encoder_hidden_states[1:])
            seq_len = hidden_states.shape[1] if hidden_states.ndim == 3 else (
                hidden_states.shape[2] * hidden_states.shape[3]
            )
            weights = self.state.weights(seq_len, hidden_states.device, hidden_states.dtype)
            if weights is None:
                return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                                  attention_mask=attention_mask, **extra)
            states = self.state.states(text)
            if type(self.inner) is AttnProcessor2_0 and not rest and attention_mask is None:
                return self._blend_sdpa(attn, hidden_states, states, weights, temb)
            out = None
            for k, ehs in enumerate(states):
                arg = (ehs, *rest) if rest else ehs
                o = self.inner(attn, hidden_states, encoder_hidden_states=arg,
                               attention_mask=attention_mask, **extra)
                w = weights[k] if o.ndim == 3 else weights[k].reshape(1, 1, *o.shape[2:])
                out = o * w if out is None else out + o * w
            return out

        @staticmethod
        def _blend_sdpa(attn: Any, hidden_states: Any, states: list[Any], weights: Any,
                        temb: Any) -> Any:
            """AttnProcessor2_0 with the query and output projection computed once."""
            residual = hidden_states
            if attn.spatial_norm is not None:
                hidden_states = attn.spatial_norm(hidden_states, temb)
            input_ndim = hidden_states.ndim
            if input_ndim == 4:
                b, c, h, w = hidden_states.shape
                hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
            batch = hidden_states.shape[0]
            if attn.group_norm is not None:
                hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
            query = attn.to_q(hidden_states)
            heads = attn.heads
            head_dim = query.shape[-1] // heads
            query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            mixed = None
            for k, ehs in enumerate(states):
                if attn.norm_cross:
                    ehs = attn.norm_encoder_hidden_states(ehs)
                key = attn.to_k(ehs).view(batch, -1, heads, head_dim).transpose(1, 2)
                value = attn.to_v(ehs).view(batch, -1, heads, head_dim).transpose(1, 2)
                if attn.norm_k is not None:
                    key = attn.norm_k(key)
                o = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
                o = o.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
                mixed = o * weights[k] if mixed is None else mixed + o * weights[k]
            out = attn.to_out[1](attn.to_out[0](mixed))
            if input_ndim == 4:
                out = out.transpose(-1, -2).reshape(b, c, h, w)
            if attn.residual_connection:
                out = out + residual
            return out / attn.rescale_output_factor

    _processor_class = RegionalAttnProcessor
    return _processor_class


# ------------------------------------------------------------------------------- installing


def cross_attention_layers(pipe: Any) -> list[Any]:
    """Every cross-attention layer of the pipeline's UNet and ControlNet(s)."""
    from diffusers.models.attention_processor import Attention

    layers = []
    for part in ("unet", "controlnet"):
        model = getattr(pipe, part, None)
        if model is None or not hasattr(model, "modules"):
            continue
        layers += [m for m in model.modules() if isinstance(m, Attention) and m.is_cross_attention]
    return layers


def encode_regions(
    pipe: Any, loaded: LoadedModel, request: GenerationRequest, regions: Sequence[RegionPrompt]
) -> list[tuple[Any, Any]]:
    """(negative, positive) text states of each region, from the pipeline's own encoder.

    A region without a negative prompt takes the request's; a model that reads no
    negative prompt (few-step distilled) gets none, as with the global prompt.
    """
    import torch

    takes_negative = loaded.family.takes_negative_prompt(loaded.info.variant, loaded.info.kind)
    out = []
    with torch.inference_mode():
        for r in regions:
            prompt, _tags = split_prompt(r.prompt)  # LoRAs are the request's, not a region's
            negative = (r.negative_prompt or request.negative_prompt) if takes_negative else ""
            enc = pipe.encode_prompt(
                prompt=prompt,
                device=pipe._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative or None,
            )
            out.append((enc[1], enc[0]))
    return out


@contextlib.contextmanager
def applied(
    pipe: Any,
    loaded: LoadedModel,
    request: GenerationRequest,
    work: tuple[int, int],
    region: Rect | None = None,
) -> Iterator[RegionState | None]:
    """Regional prompts on `pipe`'s cross-attention for the duration of the block.

    `work` is the (w, h) the pipeline runs at; `region` the part of the picture it sees
    (inpaint's context rectangle; None = all of it). Yields the shared `RegionState`, or
    None when there is nothing to do (no regions, none reaching the work area, or a
    family without regional prompts: `describe` notes that in the result).
    """
    if not request.regions or not supported(loaded) or request.task not in REGION_TASKS:
        yield None
        return
    masks = work_masks(request, work, region)
    keep = [i for i in range(len(request.regions)) if masks[i].max() > 1e-3]
    layers = cross_attention_layers(pipe)
    if not keep or not layers:
        yield None
        return
    factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    latent = (int(work[1]) // factor, int(work[0]) // factor)
    embeds = encode_regions(pipe, loaded, request, [request.regions[i] for i in keep])
    state = RegionState(pipe, embeds, masks[keep], latent)
    cls = processor_class()
    installed = []
    try:
        for layer in layers:
            wrapper = cls(layer.processor, state)
            installed.append((layer, wrapper))
            layer.set_processor(wrapper)
            # a processor set while the regions are on goes *inside* the wrapper
            layer.set_processor = _setter(layer, wrapper)
        yield state
    finally:
        for layer, wrapper in installed:
            layer.__dict__.pop("set_processor", None)
            if layer.processor is wrapper:
                layer.set_processor(wrapper.inner)  # the original, or what replaced it since
            else:  # something set the processor around our hook: it stays
                log.warning("regional prompts: a processor was replaced during the job")


def _setter(layer: Any, wrapper: Any) -> Any:
    """``layer.set_processor`` while the regions are on: the new processor (attention
    slicing after an out-of-memory step-down, an IP-Adapter loaded mid-job) replaces the
    one the wrapper calls, so the regions keep applying and the new processor stays
    after the job."""

    def set_processor(processor: Any) -> None:
        if isinstance(processor, type(wrapper)):
            type(layer).set_processor(layer, processor)
        else:
            wrapper.set_inner(processor)

    return set_processor
