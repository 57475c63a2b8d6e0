"""Tiny random ControlNets and a tiny depth-estimation model for the control-layer tests.

Saved the way people get them (diffusers / transformers folders whose names tell the
control type), so the registry finds them as it finds real ones:

- two SD 1.x ControlNets (canny, lineart) of the tiny SD 1.x model's architecture, with
  *different* random weights. diffusers initialises a ControlNet's output convolutions
  to zero (a fresh one changes nothing), so those are filled with random values here:
  each ControlNet then visibly steers the picture;
- an SDXL ControlNet (the tiny SDXL UNet's layout): a wrong-family one for SD 1.x;
- a Depth Anything model (a 2-layer DINOv2 backbone) with its image processor config;
- a ViTPose model (2-layer backbone, simple decoder), in a folder of its own (`pose_root`)
  so the other tests see a registry without a pose model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support.tiny_models import TEXT_DIM, tiny_controlnet, tiny_unet

SEED = 4321


@dataclass(frozen=True)
class TinyControlNets:
    root: Path
    sd1_canny: Path
    sd1_lineart: Path
    sdxl_canny: Path
    depth: Path  # transformers DepthAnythingForDepthEstimation folder
    pose_root: Path  # a models folder holding only `pose`
    pose: Path  # transformers VitPoseForPoseEstimation folder


def _wake(net: Any, seed: int, std: float = 0.3) -> Any:
    """Fill the zero-initialised parameters with random values (see the module doc)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return net


def tiny_sdxl_controlnet() -> Any:
    from diffusers import ControlNetModel

    unet = tiny_unet(
        4,
        cross_attention_dim=2 * TEXT_DIM,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + TEXT_DIM,
        use_linear_projection=True,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16)).eval()


def tiny_depth_anything() -> tuple[Any, Any]:
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        patch_size=14, image_size=56, out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[1.0, 0.5], patch_size=14,
    )
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
        do_rescale=True, do_normalize=True,
    )
    import torch

    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():  # random weights end in a ReLU that is ~0 everywhere: lift it
        model.head.conv3.weight.mul_(50.0)
        model.head.conv3.bias.fill_(1.0)
    return model, processor


def tiny_vitpose() -> Any:
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    backbone = VitPoseBackboneConfig(
        image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, out_indices=[2],
    )
    return VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone,
                                                  use_simple_decoder=True,
                                                  num_labels=17)).eval()


_built: dict[Path, TinyControlNets] = {}


def build_tiny_controlnets(root: str | os.PathLike[str]) -> TinyControlNets:
    """Build (once per root) the tiny control models under `root`; returns their paths."""
    import torch

    root = Path(root)
    if root in _built:
        return _built[root]
    nets = TinyControlNets(
        root=root,
        sd1_canny=root / "controlnet" / "sd1-tiny-control-canny",
        sd1_lineart=root / "controlnet" / "sd1-tiny-control-lineart",
        sdxl_canny=root / "controlnet" / "sdxl-tiny-control-canny",
        depth=root / "depth" / "tiny-depth-anything",
        pose_root=root.parent / (root.name + "-pose"),
        pose=root.parent / (root.name + "-pose") / "tiny-vitpose",
    )
    marker = root / "tiny-controlnets.json"
    if not marker.is_file():
        torch.manual_seed(SEED)
        _wake(tiny_controlnet(), 1).save_pretrained(nets.sd1_canny, safe_serialization=True)
        _wake(tiny_controlnet(), 2).save_pretrained(nets.sd1_lineart, safe_serialization=True)
        _wake(tiny_sdxl_controlnet(), 3).save_pretrained(nets.sdxl_canny, safe_serialization=True)
        model, processor = tiny_depth_anything()
        model.save_pretrained(nets.depth)
        processor.save_pretrained(nets.depth)
        tiny_vitpose().save_pretrained(nets.pose)
        (nets.pose / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "VitPoseImageProcessor", "size": {"height": 64, "width": 48},
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        }))
        marker.write_text(json.dumps({k: str(v) for k, v in asdict(nets).items()}, indent=1))
    _built[root] = nets
    return nets
