"""Cheap per-step previews from diffusion latents, for every model family.

Two ways, both far cheaper than a VAE decode:

- a fixed linear map latent -> RGB per family (`Family.projection`: the widely used
  approximation coefficients, 4 x 3 for SD/SDXL, 16 x 3 for Flux/SD3/Qwen), applied
  to the pipeline's scaled latents, giving roughly [-1, 1] per channel. One small
  matmul over the latent (1/64 of the pixels). A family without published
  coefficients (Flux.2's 32 channels) gets a normalised view of three channel groups.
- a tiny autoencoder (`diffusers.AutoencoderTiny`: TAESD, TAESDXL, TAEF1, TAESD3) when
  one is installed, which gives recognisable images at full size.

Packed latents (Flux, Chroma, Qwen: 2x2 patches as tokens; Flux.2: 128-channel
tokens) are unpacked first by the family (`Family.preview_latents`), which needs
the work size. torch is imported inside functions only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.families.base import Family

SD1, SD2, SDXL = "sd1", "sd2", "sdxl"

#: family -> (factors C x 3, bias 3): kept as a mapping for callers that want the numbers
LATENT_RGB: dict[str, tuple[np.ndarray, np.ndarray]] = {
    f.name: (f.projection.factors, f.projection.bias) for f in families.ALL if f.projection
}


def _family(name: str) -> Family:
    return families.find(name) or families.get(SD1)


def latent_to_rgb(latents: Any, family: str = SD1, index: int = 0) -> np.ndarray:
    """Project one latent of a batch (B x C x h x w tensor or array) to an h x w x 3 uint8 image."""
    proj = _family(family).projection
    if hasattr(latents, "detach"):
        import torch

        lat = latents[index].detach().float()
        if proj is None or lat.shape[0] < proj.channels:
            return _channel_view(lat.cpu().numpy())
        lat = lat[: proj.channels]
        f = torch.from_numpy(proj.factors).to(device=lat.device)
        b = torch.from_numpy(proj.bias).to(device=lat.device)
        # (h, w, C) @ (C, 3): a plain matmul is ~100x faster than einsum here on CPU
        rgb = torch.matmul(lat.permute(1, 2, 0), f * 127.5) + (b + 1.0) * 127.5
        return rgb.clamp_(0, 255).round_().to(torch.uint8).cpu().numpy()
    lat = np.asarray(latents, dtype=np.float32)[index]
    if proj is None or lat.shape[0] < proj.channels:
        return _channel_view(lat)
    lat = lat[: proj.channels]
    rgb = np.matmul(lat.transpose(1, 2, 0), proj.factors * 127.5) + (proj.bias + 1.0) * 127.5
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _channel_view(lat: np.ndarray) -> np.ndarray:
    """No coefficients known: the means of three channel groups, each stretched to 0..255."""
    groups = np.array_split(np.arange(lat.shape[0]), 3)
    planes = []
    for g in groups:
        plane = lat[g].mean(axis=0) if len(g) else np.zeros(lat.shape[1:], np.float32)
        lo, hi = float(plane.min()), float(plane.max())
        planes.append((plane - lo) / (hi - lo) if hi > lo else np.full_like(plane, 0.5))
    return np.clip(np.rint(np.stack(planes, axis=2) * 255.0), 0, 255).astype(np.uint8)


def taesd_decode(
    taesd: Any, latents: Any, scaling_factor: float, index: int = 0, shift_factor: float = 0.0
) -> np.ndarray:
    """Decode one latent with a tiny autoencoder (AutoencoderTiny): H x W x 3 uint8 at full size.

    Pipeline latents are scaled (and for Flux/SD3 shifted) by the VAE's factors; the
    tiny autoencoders expect unscaled ones (their own scaling_factor is 1.0).
    """
    import torch

    param = next(taesd.parameters())
    channels = int(getattr(taesd.config, "latent_channels", latents.shape[1]))
    lat = latents[index : index + 1, :channels].to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        img = taesd.decode(lat / scaling_factor + shift_factor).sample[0]
    img = ((img.float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    return img.permute(1, 2, 0).cpu().numpy()


class Previewer:
    """Turns step latents into an RGB preview: a tiny autoencoder when given, else the linear map.

    `pipe` and `size` (the work size, w x h) let the family unpack packed latents.
    """

    def __init__(
        self,
        family: str,
        taesd: Any | None = None,
        scaling_factor: float = 0.18215,
        *,
        shift_factor: float = 0.0,
        pipe: Any = None,
        size: tuple[int, int] = (0, 0),
    ):
        self.family = family
        self.taesd = taesd
        self.scaling_factor = scaling_factor
        self.shift_factor = shift_factor
        self.pipe = pipe
        self.size = size

    @property
    def method(self) -> str:
        if self.taesd is not None:
            return "taesd"
        return "latent-linear" if _family(self.family).projection else "latent-channels"

    def __call__(self, latents: Any, index: int = 0) -> np.ndarray:
        if hasattr(latents, "ndim") and (latents.ndim != 4):
            w, h = self.size
            latents = _family(self.family).preview_latents(self.pipe, latents, w, h)
        if self.taesd is not None:
            return taesd_decode(self.taesd, latents, self.scaling_factor, index, self.shift_factor)
        return latent_to_rgb(latents, self.family, index)
