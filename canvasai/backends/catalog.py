"""A short starter catalogue of models, by what they are for.

Each entry names its exact Hugging Face repository, which files of it are fetched, the
approximate download size and GPU memory (the exact size comes from the hub's file list
before anything downloads), and its licence: shown to the person, and to be accepted in the
app for gated or non-commercial models. Nothing here downloads anything: see
`canvasai.backends.downloads`. No Qt, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

#: uses, in the order the first-run setup and the Models window list them
USES = (
    ("drafts", "Fast drafts"),
    ("quality", "Quality"),
    ("edit", "Editing by instruction"),
    ("sketch", "Sketch control"),
    ("previews", "Live previews"),
    ("upscale", "Upscaling"),
)

# files of a diffusers repository that CanvasAI loads: configs, tokenizers, full-precision or
# bf16 safetensors; not the single-file copies, fp16 duplicates, pickles or sample pictures
_DIFFUSERS_FOLDER = (
    "model_index.json", "*/config.json", "*/*.json", "*/*.txt", "*/*.model",
    "*/diffusion_pytorch_model*.safetensors", "*/model*.safetensors",
)
_DIFFUSERS_IGNORE = ("*.fp16.*", "*fp16*.safetensors", "*.bin", "*.ckpt", "*.onnx*", "*.msgpack")
_COMPONENT = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    title: str
    use: str  # one of USES
    repo: str  # Hugging Face repository id
    summary: str
    size_gb: float  # approximate download
    memory_gb: float  # approximate GPU memory to run it without offloading
    licence: str
    licence_url: str
    allow: tuple[str, ...] = ()  # glob patterns of the files to fetch (empty: all)
    ignore: tuple[str, ...] = ()
    gated: bool = False  # the hub asks the person to log in and accept the licence first
    non_commercial: bool = False
    family: str = ""

    @property
    def needs_acceptance(self) -> bool:
        """The licence must be accepted in the app before downloading."""
        return self.gated or self.non_commercial

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "sdxl-turbo", "SDXL Turbo", "drafts", "stabilityai/sdxl-turbo",
        "A picture in 1–4 steps at 512 px: quick drafts and ideas on an 8 GB card.",
        6.9, 8, "Stability AI Community License (non-commercial use)", "https://huggingface.co/stabilityai/sdxl-turbo/blob/main/LICENSE.md",
        allow=("sd_xl_turbo_1.0_fp16.safetensors",), non_commercial=True, family="sdxl",
    ),
    CatalogEntry(
        "z-image-turbo", "Z-Image Turbo", "drafts", "Tongyi-MAI/Z-Image-Turbo",
        "8 steps, photographic, reads long prompts; needs a 16 GB card (less with offloading).",
        21, 16, "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0",
        allow=_DIFFUSERS_FOLDER, ignore=_DIFFUSERS_IGNORE, family="zimage",
    ),
    CatalogEntry(
        "sdxl-base", "Stable Diffusion XL 1.0", "quality", "stabilityai/stable-diffusion-xl-base-1.0",
        "The widely used 1024 px model; most LoRAs and ControlNets are made for it.",
        6.9, 10, "CreativeML Open RAIL++-M",
        "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
        allow=("sd_xl_base_1.0.safetensors",), family="sdxl",
    ),
    CatalogEntry(
        "flux1-dev", "FLUX.1 [dev]", "quality", "black-forest-labs/FLUX.1-dev",
        "High quality and prompt following at 1024 px; a 24 GB card, or offloading.",
        34, 24, "FLUX.1 [dev] Non-Commercial License",
        "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
        allow=_DIFFUSERS_FOLDER, ignore=_DIFFUSERS_IGNORE, gated=True, non_commercial=True,
        family="flux",
    ),
    CatalogEntry(
        "flux1-kontext-dev", "FLUX.1 Kontext [dev]", "edit", "black-forest-labs/FLUX.1-Kontext-dev",
        "Edits a picture from an instruction (“make it night”) and keeps the rest.",
        34, 24, "FLUX.1 [dev] Non-Commercial License",
        "https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev/blob/main/LICENSE.md",
        allow=_DIFFUSERS_FOLDER, ignore=_DIFFUSERS_IGNORE, gated=True, non_commercial=True,
        family="flux",
    ),
    CatalogEntry(
        "qwen-image-edit", "Qwen-Image-Edit", "edit", "Qwen/Qwen-Image-Edit",
        "Instruction editing with good text rendering; commercial use allowed. Very large.",
        58, 48, "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0",
        allow=_DIFFUSERS_FOLDER, ignore=_DIFFUSERS_IGNORE, family="qwen",
    ),
    CatalogEntry(
        "controlnet-scribble-sdxl", "ControlNet Scribble (SDXL)", "sketch",
        "xinsir/controlnet-scribble-sdxl-1.0",
        "Sketch → Render with SDXL models: follows rough strokes and line art.",
        2.5, 3, "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0",
        allow=_COMPONENT, family="sdxl",
    ),
    CatalogEntry(
        "taesd", "Tiny preview decoder (SD 1.x)", "previews", "madebyollin/taesd",
        "Sharper live previews for SD 1.x models; a few MB.",
        0.01, 0.1, "MIT", "https://opensource.org/license/mit", allow=_COMPONENT, family="sd1",
    ),
    CatalogEntry(
        "taesdxl", "Tiny preview decoder (SDXL)", "previews", "madebyollin/taesdxl",
        "Sharper live previews for SDXL models; a few MB.",
        0.01, 0.1, "MIT", "https://opensource.org/license/mit", allow=_COMPONENT, family="sdxl",
    ),
    CatalogEntry(
        "taef1", "Tiny preview decoder (FLUX.1)", "previews", "madebyollin/taef1",
        "Sharper live previews for FLUX.1 models; a few MB.",
        0.01, 0.1, "MIT", "https://opensource.org/license/mit", allow=_COMPONENT, family="flux",
    ),
    CatalogEntry(
        "sd-x4-upscaler", "Stable Diffusion x4 Upscaler", "upscale",
        "stabilityai/stable-diffusion-x4-upscaler",
        "Upscales 4× and invents fine detail from the prompt.",
        3.7, 6, "CreativeML Open RAIL++-M",
        "https://huggingface.co/stabilityai/stable-diffusion-x4-upscaler/blob/main/LICENSE.md",
        allow=(*_DIFFUSERS_FOLDER, "*/scheduler_config.json"), ignore=_DIFFUSERS_IGNORE,
        family="sd2",
    ),
)


def by_use() -> list[tuple[str, list[CatalogEntry]]]:
    """[(use label, entries)] in `USES` order."""
    return [(label, [e for e in CATALOG if e.use == key]) for key, label in USES]


def get(entry_id: str) -> CatalogEntry | None:
    return next((e for e in CATALOG if e.id == entry_id), None)
