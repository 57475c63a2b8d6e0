"""The bundled config-only folders describe the published architectures exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvasai.backends.diffusion.pipelines import config_folder_for, configs_root, shared_tokenizers
from canvasai.backends.models import BASE, CONTROLNET, INPAINT, SD1, SDXL, ModelInfo
from canvasai.core.errors import ModelError

# Published parameter counts: UNet, VAE, CLIP-L text encoder, (OpenCLIP bigG text encoder)
EXPECTED = {
    "sd1-base": (859_520_964, 83_653_863, 123_060_480, None),
    "sd1-inpaint": (859_535_364, 83_653_863, 123_060_480, None),
    "sdxl-base": (2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
    "sdxl-inpaint": (2_567_478_084, 83_653_863, 123_060_480, 694_659_840),
}


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_folder_builds_published_architecture(name: str) -> None:
    pytest.importorskip("accelerate")
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    folder = configs_root() / name
    unet_n, vae_n, te_n, te2_n = EXPECTED[name]
    with init_empty_weights():
        unet = diffusers.UNet2DConditionModel.from_config(
            diffusers.UNet2DConditionModel.load_config(folder / "unet")
        )
        vae = diffusers.AutoencoderKL.from_config(
            diffusers.AutoencoderKL.load_config(folder / "vae")
        )
        te = transformers.CLIPTextModel(
            transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")
        )
        assert (_params(unet), _params(vae), _params(te)) == (unet_n, vae_n, te_n)
        if te2_n is not None:
            te2 = transformers.CLIPTextModelWithProjection(
                transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            )
            assert _params(te2) == te2_n
    assert not list(folder.rglob("*.safetensors")) and not list(folder.rglob("*.bin"))


def test_shared_tokenizer_is_the_real_clip_bpe() -> None:
    toks = shared_tokenizers(configs_root() / "sdxl-base", SDXL)
    tok, tok2 = toks["tokenizer"], toks["tokenizer_2"]
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert tok.pad_token == "<|endoftext|>" and tok2.pad_token == "!"


def test_config_folder_choice(tmp_path: Path) -> None:
    def info(family: str, kind: str, name: str = "m.safetensors") -> ModelInfo:
        return ModelInfo("m", tmp_path / name, family, kind, "single_file")

    assert config_folder_for(info(SD1, BASE)).name == "sd1-base"
    assert config_folder_for(info(SDXL, INPAINT)).name == "sdxl-inpaint"
    assert config_folder_for(info(SD1, CONTROLNET)).name == "sd1-controlnet"
    (tmp_path / "custom.config").mkdir()
    assert config_folder_for(info(SD1, BASE, "custom.safetensors")) == tmp_path / "custom.config"
    with pytest.raises(ModelError, match="not supported yet"):
        config_folder_for(info("sd2", BASE))
