"""Exporting images: the flattened document, each layer, or the selection.

Formats: PNG, JPEG (quality), WebP (quality or lossless), TIFF; an optional
scale; alpha kept where the format has it (JPEG is flattened onto white).
Files are written atomically.

Provenance metadata for AI-touched images (unless `ExportOptions.metadata` is
False):
- generation parameters as text in the layout AUTOMATIC1111's web UI writes and
  other tools (Civitai, A1111's "PNG info", ComfyUI loaders, exiftool) read::

      a castle on a hill
      Negative prompt: blurry
      Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd15

  in a PNG `parameters` text chunk, in EXIF UserComment for JPEG and WebP
  ("UNICODE\\0" + UTF-16BE, as piexif and A1111 write it), in the TIFF
  ImageDescription tag;
- the IPTC digital source type in XMP (`Iptc4xmpExt:DigitalSourceType`):
  `trainedAlgorithmicMedia` when every visible non-empty layer was generated,
  `compositeWithTrainedAlgorithmicMedia` when a person's painting has AI edits.

Content Credentials (C2PA, `canvasai.formats.credentials`): every export, unless
`ExportOptions.metadata` is False, also carries a signed manifest of what was created
and edited, with which models. Pass a `ContentCredentials` to choose the identity and to
read each file's outcome; without one, the ``credentials`` settings decide. Signing never
fails an export: a file that cannot be signed is written without a manifest and its
outcome says why.

A layer's `generation` dict (filled by the generation flows) uses these keys;
all optional, unknown keys are appended to the parameters line as `Key: value`:

    prompt (str), negative_prompt (str), steps (int), sampler (str),
    cfg_scale (float), seed (int), width (int), height (int), model (str),
    model_hash (str), strength (float, shown as "Denoising strength"),
    task (str: inpaint/outpaint/txt2img/img2img/sketch/upscale; not written)
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from canvasai.core.errors import FileFormatError
from canvasai.core.geometry import Rect
from canvasai.document.compositing import composite_layers
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.formats.atomic import atomic_write_bytes
from canvasai.formats.credentials import ContentCredentials

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}
SUFFIXES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
EXTENSION = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tiff"}

SOURCE_TYPE_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATED = "trainedAlgorithmicMedia"
COMPOSITE = "compositeWithTrainedAlgorithmicMedia"

EXIF_IFD = 0x8769
EXIF_USER_COMMENT = 0x9286
TIFF_XMP = 700
TIFF_IMAGE_DESCRIPTION = 270
_UNICODE_PREFIX = b"UNICODE\x00"

_KNOWN_KEYS = (
    "prompt",
    "negative_prompt",
    "steps",
    "sampler",
    "cfg_scale",
    "seed",
    "width",
    "height",
    "model",
    "model_hash",
    "strength",
    "task",
    "time",  # when the candidate was made: CanvasAI's own bookkeeping, not a setting
)


@dataclass(frozen=True)
class ExportOptions:
    format: str = "png"  # png | jpeg | webp | tiff
    quality: int = 92  # JPEG / lossy WebP, 1..100
    lossless: bool = False  # WebP only
    scale: float = 1.0
    metadata: bool = True  # write generation parameters and provenance

    def validated(self) -> ExportOptions:
        fmt = self.format.lower().lstrip(".")
        fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise FileFormatError(f"Cannot export as {self.format!r}: use PNG, JPEG, WebP or TIFF.")
        if not 1 <= int(self.quality) <= 100:
            raise FileFormatError(f"Quality must be between 1 and 100, not {self.quality}.")
        if not (0.01 <= float(self.scale) <= 16):
            raise FileFormatError(f"Scale must be between 0.01 and 16, not {self.scale}.")
        return ExportOptions(
            fmt, int(self.quality), bool(self.lossless), float(self.scale), bool(self.metadata)
        )


def format_for_path(path: str | os.PathLike[str], default: str = "png") -> str:
    return SUFFIXES.get(Path(path).suffix.lower(), default)


# -- provenance ---------------------------------------------------------------------------
def _quote(value: Any) -> str:
    """A1111's rule: values holding a comma, colon or newline are JSON-quoted."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def format_parameters(gen: dict[str, Any]) -> str:
    """Generation parameters as A1111's `parameters` text (prompt, negative, settings line)."""
    lines = [str(gen.get("prompt", "") or "")]
    if gen.get("negative_prompt"):
        lines.append(f"Negative prompt: {gen['negative_prompt']}")
    fields: list[tuple[str, Any]] = []
    for key, label in (
        ("steps", "Steps"),
        ("sampler", "Sampler"),
        ("cfg_scale", "CFG scale"),
        ("seed", "Seed"),
    ):
        if gen.get(key) is not None:
            fields.append((label, _num(gen[key])))
    if gen.get("width") and gen.get("height"):
        fields.append(("Size", f"{int(gen['width'])}x{int(gen['height'])}"))
    if gen.get("model_hash"):
        fields.append(("Model hash", gen["model_hash"]))
    if gen.get("model"):
        fields.append(("Model", gen["model"]))
    if gen.get("strength") is not None:
        fields.append(("Denoising strength", _num(gen["strength"])))
    for key, value in gen.items():
        if (
            key in _KNOWN_KEYS
            or value is None
            or isinstance(value, (dict, list, np.ndarray, bytes))
        ):
            continue
        label = re.sub(r"[_]+", " ", str(key)).strip().capitalize()
        fields.append((label, value))
    if fields:
        lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in fields))
    # Lone surrogates cannot be encoded in any file format: replace them.
    return "\n".join(lines).encode("utf-8", "replace").decode("utf-8")


def _has_content(layer: Layer) -> bool:
    return bool(layer.surface.fill[-1]) or bool(layer.surface.tile_keys())


def source_type(layers: Sequence[Layer]) -> str | None:
    """IPTC digital source type for the visible `layers`, or None if no AI was involved."""
    visible = [la for la in layers if la.visible and _has_content(la)]
    generated = [la for la in visible if la.generation]
    if not generated:
        return None
    return GENERATED if len(generated) == len(visible) else COMPOSITE


def latest_generation(layers: Sequence[Layer]) -> dict[str, Any] | None:
    """The parameters of the topmost visible generated layer."""
    for layer in reversed(list(layers)):
        if layer.visible and layer.generation:
            return layer.generation
    return None


def xmp_packet(source: str) -> bytes:
    """A minimal XMP packet stating the IPTC digital source type."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="CanvasAI">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{SOURCE_TYPE_BASE}{source}"\n'
        '    xmp:CreatorTool="CanvasAI"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def user_comment(text: str) -> bytes:
    return _UNICODE_PREFIX + text.encode("utf-16-be")


def decode_user_comment(raw: bytes | str) -> str:
    """Read an EXIF UserComment as written by `user_comment` (or ASCII/undefined ones)."""
    if isinstance(raw, str):
        return raw
    head, body = raw[:8], raw[8:]
    if head == _UNICODE_PREFIX:
        return body.decode("utf-16-be", errors="replace")
    return body.decode("utf-8", errors="replace").rstrip("\x00")


@dataclass(frozen=True)
class Provenance:
    parameters: str | None
    source_type: str | None

    @staticmethod
    def of(layers: Sequence[Layer]) -> Provenance:
        gen = latest_generation(layers)
        return Provenance(format_parameters(gen) if gen else None, source_type(layers))


# -- encoding -------------------------------------------------------------------------
def _scaled(img: Image.Image, scale: float) -> Image.Image:
    if scale == 1.0:
        return img
    w = max(1, round(img.width * scale))
    h = max(1, round(img.height * scale))
    # Pillow resamples RGBA premultiplied, so transparent edges do not darken.
    return img.resize((w, h), Image.Resampling.LANCZOS)


def _flatten_on_white(img: Image.Image) -> Image.Image:
    if img.mode != "RGBA":
        return img.convert("RGB")
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    bg.alpha_composite(img)
    return bg.convert("RGB")


def encode_image(
    pixels: np.ndarray, options: ExportOptions, provenance: Provenance | None = None
) -> bytes:
    """Encode straight RGBA pixels to the bytes of an image file."""
    opts = options.validated()
    img = _scaled(Image.fromarray(np.ascontiguousarray(pixels), "RGBA"), opts.scale)
    params = provenance.parameters if (provenance and opts.metadata) else None
    source = provenance.source_type if (provenance and opts.metadata) else None
    xmp = xmp_packet(source) if source else None
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    exif = Image.Exif()
    if params and opts.format != "png":
        exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = user_comment(params)
    if opts.format == "png":
        info = PngImagePlugin.PngInfo()
        if params:
            info.add_text("parameters", params)
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        img.save(buf, "PNG", pnginfo=info, compress_level=6)
    elif opts.format == "jpeg":
        if xmp:
            kwargs["xmp"] = xmp
        if params:
            kwargs["exif"] = exif
        _flatten_on_white(img).save(buf, "JPEG", quality=opts.quality, optimize=True, **kwargs)
    elif opts.format == "webp":
        if xmp:
            kwargs["xmp"] = xmp
        if params:
            kwargs["exif"] = exif
        if opts.lossless:
            img.save(buf, "WEBP", lossless=True, quality=100, method=4, exact=True, **kwargs)
        else:
            img.save(buf, "WEBP", quality=opts.quality, method=4, **kwargs)
    else:
        tiffinfo: dict[int, Any] = {}
        if xmp:
            tiffinfo[TIFF_XMP] = xmp
        if params:
            tiffinfo[TIFF_IMAGE_DESCRIPTION] = params
        img.save(buf, "TIFF", compression="tiff_adobe_deflate", tiffinfo=tiffinfo, **kwargs)
    return buf.getvalue()


def _write(path: str | os.PathLike[str], data: bytes) -> Path:
    p = Path(path)
    try:
        atomic_write_bytes(p, data)
    except FileFormatError:
        raise
    except OSError as exc:
        raise FileFormatError(f"Could not write “{p}”: {exc.strerror or exc}.") from exc
    return p


def _options_for(path: str | os.PathLike[str], options: ExportOptions | None) -> ExportOptions:
    if options is None:
        return ExportOptions(format=format_for_path(path))
    opts = options.validated()
    check_format_matches_path(path, opts)
    return opts


def _signed(
    data: bytes,
    opts: ExportOptions,
    credentials: ContentCredentials | None,
    layers: Sequence[Layer],
    metadata: dict[str, Any] | None,
    path: str | os.PathLike[str],
) -> bytes:
    """`data` with Content Credentials (unless metadata is off); never raises."""
    if not opts.metadata:
        return data
    creds = credentials if credentials is not None else ContentCredentials.from_settings()
    return creds.sign(data, opts.format, layers, metadata, str(path))


# -- public exports ------------------------------------------------------------------------
def export_flattened(
    doc: Document,
    path: str | os.PathLike[str],
    options: ExportOptions | None = None,
    credentials: ContentCredentials | None = None,
) -> Path:
    """The visible image, flattened, as one file."""
    opts = _options_for(path, options)
    pixels = composite_layers(doc.layers, doc.rect)
    data = encode_image(pixels, opts, Provenance.of(doc.layers))
    return _write(path, _signed(data, opts, credentials, doc.layers, doc.metadata, path))


def selection_rect(doc: Document) -> Rect:
    if doc.selection is None:
        return Rect(0, 0, 0, 0)
    return doc.selection.bounds().intersect(doc.rect)


def selection_pixels(doc: Document, layer: Layer | None = None) -> np.ndarray:
    """The selected part (its bounding box; alpha scaled by the selection coverage) of the
    flattened image, or of `layer` when given. Raises if there is no selection."""
    rect = selection_rect(doc)
    if rect.is_empty():
        raise FileFormatError("There is no selection to export.")
    pixels = layer.surface.read(rect) if layer is not None else composite_layers(doc.layers, rect)
    assert doc.selection is not None
    cover = doc.selection.read(rect)[:, :, 0].astype(np.uint16)
    pixels[..., 3] = ((pixels[..., 3].astype(np.uint16) * cover + 127) // 255).astype(np.uint8)
    return pixels


def export_selection(
    doc: Document,
    path: str | os.PathLike[str],
    options: ExportOptions | None = None,
    credentials: ContentCredentials | None = None,
) -> Path:
    """The selected part of the flattened image, cropped to the selection's bounds."""
    opts = _options_for(path, options)
    data = encode_image(selection_pixels(doc), opts, Provenance.of(doc.layers))
    return _write(path, _signed(data, opts, credentials, doc.layers, doc.metadata, path))


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_RESERVED = frozenset(
    {
        "CON",
        "PRN",
        "AUX",
        "NUL",
        *(f"COM{i}" for i in range(1, 10)),
        *(f"LPT{i}" for i in range(1, 10)),
    }
)
MAX_NAME_BYTES = 200  # well under the 255-byte limit of common file systems


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 form fits `max_bytes` (whole characters)."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text.encode("utf-8", "replace").decode("utf-8")
    return raw[:max_bytes].decode("utf-8", "ignore")  # drops a partly cut last character


def safe_file_stem(name: str, fallback: str = "layer", max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file name stem made from a layer name: no separators, no control characters,
    not a reserved device name, at most `max_bytes` bytes of UTF-8 (cut between characters)."""
    stem = _UNSAFE_NAME.sub("_", name)
    stem = stem.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    stem = _cut_utf8(stem.strip(" ."), max_bytes).strip(" .")
    if stem.split(".")[0].upper() in _RESERVED:
        stem = _cut_utf8("_" + stem, max_bytes)
    return stem or fallback


def safe_file_name(
    name: str, suffix: str, taken: set[str] | None = None, max_bytes: int = MAX_NAME_BYTES
) -> str:
    """`<safe stem><suffix>` in at most `max_bytes` bytes of UTF-8, never cutting a
    character; made unique (case-insensitively) against `taken`, which it updates."""
    room = max_bytes - len(suffix.encode("utf-8"))
    stem = safe_file_stem(name, max_bytes=room)
    candidate = stem + suffix
    n = 2
    while taken is not None and candidate.casefold() in taken:
        tail = f" ({n})"
        candidate = safe_file_stem(stem, max_bytes=room - len(tail)) + tail + suffix
        n += 1
    if taken is not None:
        taken.add(candidate.casefold())
    return candidate


def check_format_matches_path(path: str | os.PathLike[str], options: ExportOptions) -> None:
    """Refuse writing one format under another format's suffix (TIFF bytes in x.png)."""
    suffix = Path(path).suffix.lower()
    implied = SUFFIXES.get(suffix)
    fmt = options.validated().format
    if implied is not None and implied != fmt:
        raise FileFormatError(
            f"“{Path(path).name}” ends in {suffix} but the format asked for is "
            f"{FORMATS[fmt]}: use a {EXTENSION[fmt]} name, or choose {FORMATS[implied]}."
        )


def export_layers(
    doc: Document,
    folder: str | os.PathLike[str],
    options: ExportOptions | None = None,
    credentials: ContentCredentials | None = None,
) -> list[Path]:
    """Each layer as a full-canvas file in `folder`, named after the layer (bottom first,
    numbered so the order and duplicate names survive). Names are made safe and cut to
    `MAX_NAME_BYTES` bytes of UTF-8 (see `safe_file_name`)."""
    opts = options.validated() if options is not None else ExportOptions()
    taken: set[str] = set()
    out_dir = Path(folder)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileFormatError(
            f"Could not create the folder “{out_dir}”: {exc.strerror or exc}."
        ) from exc
    written = []
    if opts.metadata and credentials is None:
        credentials = ContentCredentials.from_settings()  # one identity for every file
    for i, layer in enumerate(doc.layers):
        pixels = layer.surface.read(doc.rect)
        if layer.opacity < 1.0:
            pixels[..., 3] = (pixels[..., 3] * layer.opacity + 0.5).astype(np.uint8)
        name = safe_file_name(f"{i + 1:02d} {layer.name}", EXTENSION[opts.format], taken)
        prov = (
            Provenance(format_parameters(layer.generation), GENERATED) if layer.generation else None
        )
        data = encode_image(pixels, opts, prov)
        # Each file's credentials speak of that layer alone (the opened image stays its parent).
        data = _signed(data, opts, credentials, [layer], doc.metadata, out_dir / name)
        written.append(_write(out_dir / name, data))
    return written
