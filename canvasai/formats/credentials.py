"""Content Credentials (C2PA): sign what CanvasAI exports, read what it opens.

Signing (`ContentCredentials.sign`, called by `canvasai.formats.export` for every PNG,
JPEG, WebP and TIFF it writes) embeds a C2PA manifest with
- CanvasAI as the claim generator;
- the actions, in order (`actions_for`): ``c2pa.opened`` when the picture started from an
  opened image (that image is the parent ingredient, its own manifest chained in), else
  ``c2pa.created`` (``trainedAlgorithmicMedia`` when a text-to-image result is the start,
  ``digitalArt`` for a person's painting, ``empty`` for a blank canvas); then ``c2pa.edited``
  by a person (painting: visible layers no generation made, other than the opened image
  itself); then each accepted generation still in the picture, oldest first, as
  ``c2pa.edited`` with ``compositeWithTrainedAlgorithmicMedia`` naming its model (name and
  a cheap stable hash, see `model_identity`); the classic OpenCV backend is named as the
  non-AI algorithm it is.
- signed by the person's certificate chain or a self-issued one
  (`canvasai.formats.credentials_identity`), with a timestamp authority only if one is set.

A failure to sign never fails an export: the file goes out without a manifest, and the
outcome (`SignOutcome`) says why.

Reading (`read_credentials`) validates a file's manifest with the c2pa library (no remote
manifest fetch, no OCSP; manifests capped at `MAX_MANIFEST_MB`) and reduces it to what a
person asks: who signed, when, the actions and ingredients, and the state: trusted
(chains to a configured trust anchor), valid (intact and correctly signed, signer not
on a trust list: every self-issued signer), invalid, or tampered (the pixels or an
assertion no longer match what was signed). Anything malformed becomes an "unreadable"
result with its reason; nothing here raises on a hostile file.

No Qt. The c2pa library is imported on first use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from canvasai import __version__
from canvasai.core.paths import data_dir
from canvasai.document.layer import Layer
from canvasai.formats.credentials_identity import (
    CredentialsError,
    SigningIdentity,
    load_identity,
    self_issued_identity,
)

log = logging.getLogger(__name__)

CLAIM_GENERATOR = "CanvasAI"
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff"}
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
DIGITAL_ART = IPTC + "digitalArt"
HUMAN_EDITS = IPTC + "humanEdits"
ALGORITHMIC = IPTC + "algorithmicMedia"
EMPTY = "http://c2pa.org/digitalsourcetype/empty"
PARENT_KEY = "c2pa_parent"  # Document.metadata: the opened image as an ingredient
PARENT_LABEL = "parent"
MAX_MANIFEST_MB = 16
MAX_HEADER_BYTES = 100 * 1024 * 1024
HEAD_BYTES = 1 << 20

STATES = ("trusted", "valid", "invalid", "tampered", "unreadable")
_TAMPER_CODES = (
    "assertion.dataHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.hashedURI.mismatch",
    "assertion.collectionHash.mismatch",
)
_INFO_ONLY = ("signingCredential.untrusted", "signingCredential.ocsp.skipped")


def _c2pa() -> Any:
    import c2pa

    return c2pa


def _context(*, archive: bool = False, trust_pem: str | None = None) -> Any:
    """A c2pa Context: never fetches anything over the network, bounded manifest size."""
    builder: dict[str, Any] = {"thumbnail": {"enabled": False}}
    if archive:
        builder["generate_c2pa_archive"] = True
    cfg: dict[str, Any] = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "core": {"max_decompressed_manifest_size_in_mb": MAX_MANIFEST_MB},
        "builder": builder,
    }
    if trust_pem:
        cfg["trust"] = {"user_anchors": trust_pem}
    return _c2pa().Context.from_dict(cfg)


# ------------------------------------------------------------------------------ model identity
_id_lock = threading.Lock()
_id_cache: dict[tuple[str, int, int], str] = {}


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return head
        (n,) = struct.unpack("<Q", head)
        return head + fh.read(min(n, MAX_HEADER_BYTES))


def _file_identity(h: Any, path: Path) -> None:
    h.update(str(path.stat().st_size).encode())
    if path.suffix.lower() == ".safetensors":
        h.update(_safetensors_header(path))
    else:
        with open(path, "rb") as fh:
            h.update(fh.read(HEAD_BYTES))


def model_identity(path: str | os.PathLike[str]) -> str | None:
    """A cheap, stable identity of a model file or folder, without reading its weights:
    sha256 over the size and the safetensors header (every tensor's name, dtype, shape and
    offset) of each weights file (first MiB of other formats; plus ``model_index.json``
    and the configs of a diffusers folder). Cached by path, size and modification time.
    None when the path cannot be read."""
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        with _id_lock:
            if key in _id_cache:
                return _id_cache[key]
        h = hashlib.sha256()
        if p.is_dir():
            files = sorted(
                f
                for pattern in ("*.safetensors", "*.json", "*.gguf")
                for f in p.rglob(pattern)
                if f.is_file() and len(f.relative_to(p).parts) <= 3
            )[:256]
            for f in files:
                h.update(f.relative_to(p).as_posix().encode())
                if f.suffix == ".json":
                    h.update(f.read_bytes()[:HEAD_BYTES])
                else:
                    _file_identity(h, f)
        else:
            _file_identity(h, p)
        digest = "sha256:" + h.hexdigest()
    except OSError:
        return None
    with _id_lock:
        _id_cache[key] = digest
    return digest


ModelResolver = Callable[[str], "str | os.PathLike[str] | None"]


def _resolve_path(model: str, resolver: ModelResolver | None) -> Path | None:
    try:
        found = resolver(model) if resolver is not None else None
    except Exception as exc:  # noqa: BLE001 - a registry problem must not stop an export
        log.debug("model lookup for %r failed: %s", model, exc)
        found = None
    if found:
        return Path(found)
    p = Path(model).expanduser()
    return p if p.is_absolute() and p.exists() else None


# ---------------------------------------------------------------------------------- actions
def _has_content(layer: Layer) -> bool:
    return bool(layer.surface.fill[-1]) or bool(layer.surface.tile_keys())


def pixels_digest(layer: Layer) -> str:
    """A digest of a layer's painted pixels, independent of where they sit on the canvas
    (trimmed to their bounding box), to recognise the opened image among the layers."""
    s = layer.surface
    if not s.tile_keys():
        return "fill:" + bytes(np.asarray(s.fill, np.uint8)).hex()
    keys = s.tile_keys()
    box = s.key_rect(keys[0])
    for k in keys[1:]:
        box = box.union(s.key_rect(k))
    px = s.read(box)  # the allocated tiles; trimmed to the painted pixels below
    alpha = px[..., 3]
    rows, cols = np.flatnonzero(alpha.max(axis=1)), np.flatnonzero(alpha.max(axis=0))
    if rows.size == 0:
        return "empty"
    px = px[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if not px.flags.c_contiguous:
        px = np.ascontiguousarray(px)
    # Recognition, not a security boundary (the signature is): the faster SHA-1 will do.
    h = hashlib.sha1(str(px.shape).encode(), usedforsecurity=False)
    h.update(memoryview(px).cast("B"))  # no copy of the pixels
    return h.hexdigest()


def _is_plain_fill(layer: Layer) -> bool:
    """A background of one colour with nothing painted on it (new documents start so)."""
    return not layer.surface.tile_keys()


def _generations(layers: Sequence[Layer]) -> list[dict[str, Any]]:
    """The accepted generations still visible in the picture, oldest first, once each."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for la in layers:
        gen = la.generation
        if not (la.visible and isinstance(gen, Mapping) and _has_content(la)):
            continue
        key = (gen.get("time"), gen.get("seed"), gen.get("task"), gen.get("model"))
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(gen))
    return sorted(out, key=lambda g: g.get("time") if isinstance(g.get("time"), (int, float)) else 0)


def person_painted(layers: Sequence[Layer], parent_digest: str | None = None) -> bool:
    """Whether a visible layer holds a person's work: made by no generation, not a plain
    background colour, and not the opened image itself (`parent_digest`)."""
    for la in layers:
        if not la.visible or la.generation or not _has_content(la) or _is_plain_fill(la):
            continue
        if parent_digest is not None and pixels_digest(la) == parent_digest:
            continue
        return True
    return False


def _when(gen: Mapping[str, Any]) -> str | None:
    t = gen.get("time")
    if isinstance(t, (int, float)) and 0 < t < 1e11:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
    return None


_TASK_WORDS = {
    "txt2img": "generated from text",
    "img2img": "refined by AI (image to image)",
    "inpaint": "inpainted by AI",
    "outpaint": "extended by AI (outpaint)",
    "sketch": "rendered from a sketch by AI",
    "upscale": "upscaled by AI",
    "edit": "edited by AI (instruction)",
}


def _ai_action(gen: Mapping[str, Any], created: bool, model_hash: str | None) -> dict[str, Any]:
    task = str(gen.get("task") or gen.get("flow") or "edit")
    model = str(gen.get("model") or "unknown model")
    classic = gen.get("backend") == "classic" or model == "classic"
    params: dict[str, Any] = {"task": task, "model": model}
    if model_hash:
        params["model_hash"] = model_hash
    if gen.get("model_hash"):
        params["model_hash_a1111"] = str(gen["model_hash"])
    for k in ("seed", "steps", "sampler"):
        if gen.get(k) is not None and isinstance(gen.get(k), (int, float, str)):
            params[k] = gen[k]
    action: dict[str, Any] = {
        "action": "c2pa.created" if created else "c2pa.edited",
        "softwareAgent": {"name": model if not classic else f"{CLAIM_GENERATOR} classic backend"},
        "parameters": params,
    }
    if classic:
        action["description"] = f"{task} by the classic OpenCV backend (no trained model)"
        action["digitalSourceType"] = ALGORITHMIC
    else:
        action["description"] = f"{_TASK_WORDS.get(task, task)} with {model}"
        action["digitalSourceType"] = TRAINED if created else COMPOSITE
    when = _when(gen)
    if when:
        action["when"] = when
    return action


def actions_for(
    layers: Sequence[Layer],
    *,
    parent: bool = False,
    parent_digest: str | None = None,
    model_hash: Callable[[str], str | None] = lambda _m: None,
) -> list[dict[str, Any]]:
    """The C2PA actions for `layers`, in order (see the module docstring)."""
    software = {"name": CLAIM_GENERATOR, "version": __version__}
    gens = _generations(layers)
    painted = person_painted(layers, parent_digest if parent else None)
    actions: list[dict[str, Any]] = []
    if parent:
        actions.append(
            {
                "action": "c2pa.opened",
                "softwareAgent": software,
                "parameters": {"ingredientIds": [PARENT_LABEL]},
            }
        )
    else:
        first_txt = next((g for g in gens if g.get("task") == "txt2img"
                          and g.get("backend") != "classic"), None)
        if first_txt is not None:
            gens.remove(first_txt)
            actions.append(_ai_action(first_txt, True, model_hash(str(first_txt.get("model", "")))))
        else:
            actions.append(
                {
                    "action": "c2pa.created",
                    "softwareAgent": software,
                    "digitalSourceType": DIGITAL_ART if painted else EMPTY,
                    "description": "painted by a person in CanvasAI" if painted else "a new canvas",
                }
            )
            painted = False  # said by the created action
    if painted:
        actions.append(
            {
                "action": "c2pa.edited",
                "softwareAgent": software,
                "digitalSourceType": HUMAN_EDITS,
                "description": "painted by a person (brush, eraser, fill)",
            }
        )
    for gen in gens:
        actions.append(_ai_action(gen, False, model_hash(str(gen.get("model", "")))))
    return actions


def manifest_for(
    layers: Sequence[Layer],
    title: str,
    *,
    parent: Mapping[str, Any] | None = None,
    model_hash: Callable[[str], str | None] = lambda _m: None,
) -> dict[str, Any]:
    """The manifest definition the c2pa Builder signs."""
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": actions_for(
                        layers,
                        parent=parent is not None,
                        parent_digest=(parent or {}).get("digest"),
                        model_hash=model_hash,
                    )
                },
            }
        ],
    }


# --------------------------------------------------------------------------------- signing
@dataclass(frozen=True)
class SignOutcome:
    target: str
    signed: bool
    message: str


@dataclass
class ContentCredentials:
    """How this export signs: an identity, or the reason there is none (then exports go
    out without a manifest and say so). Keeps the outcome of each file it signed."""

    identity: SigningIdentity | None
    problem: str | None = None  # why there is no identity (None: signing is on)
    tsa_url: str | None = None
    resolve_model: ModelResolver | None = None
    outcomes: list[SignOutcome] = field(default_factory=list)

    @classmethod
    def disabled(cls, reason: str = "signing is turned off in Preferences") -> ContentCredentials:
        return cls(None, reason)

    @classmethod
    def from_settings(
        cls, cs: Any | None = None, resolve_model: ModelResolver | None = None
    ) -> ContentCredentials:
        """From the ``credentials`` settings section (the current settings by default).
        Never raises: a missing or broken identity becomes the reason exports are unsigned."""
        if cs is None:
            from canvasai.core import settings

            cs = settings.current().credentials
        if not cs.sign:
            return cls.disabled()
        try:
            identity = identity_for(cs)
        except CredentialsError as exc:
            return cls(None, str(exc), resolve_model=resolve_model)
        except Exception as exc:  # noqa: BLE001 - the export must still go out
            return cls(None, f"the signing identity could not be loaded ({exc})",
                       resolve_model=resolve_model)
        return cls(identity, None, (cs.tsa_url or "").strip() or None, resolve_model)

    def _model_hash(self, model: str) -> str | None:
        if not model:
            return None
        path = _resolve_path(model, self.resolve_model)
        return model_identity(path) if path is not None else None

    def sign(
        self,
        data: bytes,
        fmt: str,
        layers: Sequence[Layer],
        metadata: Mapping[str, Any] | None,
        target: str,
    ) -> bytes:
        """`data` (an encoded `fmt` file) with a manifest embedded, or `data` unchanged when
        it cannot be signed; either way the outcome is appended to `outcomes`."""
        if self.identity is None:
            return self.sign_manifest(data, fmt, None, metadata, target)
        try:
            manifest = self.manifest(layers, metadata, target)
        except Exception as exc:  # noqa: BLE001 - a failure to sign never blocks an export
            self._unsigned(target, exc)
            return data
        return self.sign_manifest(data, fmt, manifest, metadata, target)

    def manifest(
        self, layers: Sequence[Layer], metadata: Mapping[str, Any] | None, target: str
    ) -> dict[str, Any]:
        """The manifest for `layers` (computed where the layers are, signed later)."""
        return manifest_for(layers, Path(target).name, parent=_parent_of(metadata),
                            model_hash=self._model_hash)

    def sign_manifest(
        self,
        data: bytes,
        fmt: str,
        manifest: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        target: str,
    ) -> bytes:
        """Like `sign`, with the manifest already made by `manifest`."""
        name = Path(target).name
        if self.identity is None or manifest is None:
            self.outcomes.append(SignOutcome(name, False, f"not signed: {self.problem}"))
            return data
        if fmt not in MIME:
            self._unsigned(target, f"{fmt.upper()} files cannot carry Content Credentials")
            return data
        parent = _parent_of(metadata)
        try:
            signed = sign_bytes(data, fmt, manifest, self.identity, self.tsa_url,
                                parent["archive"] if parent else None)
        except Exception as exc:  # noqa: BLE001 - a failure to sign never blocks an export
            self._unsigned(target, exc)
            return data
        self.outcomes.append(SignOutcome(name, True, f"signed by {self.identity.describe()}"))
        return signed

    def _unsigned(self, target: str, why: object) -> None:
        msg = (str(why).strip() or type(why).__name__)[:500]
        log.warning("could not sign %s: %s", Path(target).name, msg)
        self.outcomes.append(SignOutcome(Path(target).name, False, f"not signed: {msg}"))

    def summary(self) -> str:
        """One line for a status bar or the CLI."""
        if not self.outcomes:
            return ""
        bad = [o for o in self.outcomes if not o.signed]
        if not bad and self.identity is not None:
            kind = " (self-issued: valid, not trusted)" if self.identity.self_issued else ""
            return f"Content Credentials: signed as {self.identity.subject}{kind}"
        return f"Content Credentials: {len(bad)} of {len(self.outcomes)} file(s) " + bad[0].message


def identity_for(cs: Any) -> SigningIdentity:
    """The identity the ``credentials`` settings name: the person's chain and key when both
    are set, else the self-issued one in ``<data dir>/credentials``."""
    chain, key = (cs.cert_chain or "").strip(), (cs.private_key or "").strip()
    if chain or key:
        if not (chain and key):
            raise CredentialsError(
                "set both the certificate chain and the private key in Preferences "
                "(or neither, to use CanvasAI's self-issued certificate)"
            )
        return load_identity(chain, key)
    return self_issued_identity(data_dir() / "credentials", cs.signer_name or "")


def sign_bytes(
    data: bytes,
    fmt: str,
    manifest: Mapping[str, Any],
    identity: SigningIdentity,
    tsa_url: str | None = None,
    parent_archive: bytes | None = None,
) -> bytes:
    """Embed and sign `manifest` into the encoded image `data` (raises on failure)."""
    c2pa = _c2pa()
    mime = MIME[fmt]
    info = c2pa.C2paSignerInfo(identity.alg.encode(), identity.chain_pem, identity.key_pem,
                               tsa_url.encode() if tsa_url else None)
    ctx = _context(archive=parent_archive is not None)
    try:
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(dict(manifest), context=ctx) as b:
            if parent_archive is not None:
                b.add_ingredient_from_archive(io.BytesIO(parent_archive))
            out = io.BytesIO()
            b.sign(signer, mime, io.BytesIO(data), out)
            return out.getvalue()
    finally:
        ctx.close()


def _parent_of(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    parent = (metadata or {}).get(PARENT_KEY)
    if isinstance(parent, Mapping) and isinstance(parent.get("archive"), (bytes, bytearray)):
        return {"archive": bytes(parent["archive"]), "digest": parent.get("digest"),
                "title": str(parent.get("title", ""))}
    return None


def parent_record(data: bytes, title: str, layer: Layer | None) -> dict[str, Any] | None:
    """The opened file as a parent ingredient (its own manifest, if any, chained in), to keep
    in ``Document.metadata[PARENT_KEY]``; None when the library cannot take it."""
    fmt = sniff_format(data)
    if fmt is None:
        return None
    c2pa = _c2pa()
    try:
        ctx = _context(archive=True)
        try:
            with c2pa.Builder({"title": title}, context=ctx) as b:
                b.add_ingredient(
                    {"title": title, "relationship": "parentOf", "label": PARENT_LABEL},
                    MIME[fmt],
                    io.BytesIO(data),
                )
                out = io.BytesIO()
                b.write_ingredient_archive(PARENT_LABEL, out)
        finally:
            ctx.close()
    except Exception as exc:  # noqa: BLE001 - a hostile manifest must not block opening
        log.info("%s cannot be an ingredient: %s", title, exc)
        return None
    return {
        "archive": out.getvalue(),
        "title": title,
        "digest": pixels_digest(layer) if layer is not None else None,
    }


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


# --------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class ActionInfo:
    action: str  # c2pa.created, c2pa.edited, ...
    description: str
    source_type: str  # the IPTC/C2PA term (last path part), "" if none
    agent: str
    model: str
    model_hash: str
    when: str

    def text(self) -> str:
        verb = self.action.removeprefix("c2pa.")
        parts = [verb]
        if self.description:
            parts.append(f"— {self.description}")
        if self.model and self.model not in self.description:
            parts.append(f"(model {self.model})")
        if self.source_type:
            parts.append(f"[{self.source_type}]")
        if self.model_hash:
            parts.append(f"hash {self.model_hash[:23]}…")
        if self.when:
            when = self.when.replace("T", " ")
            parts.append(f"at {when[:-6] + ' UTC' if when.endswith('+00:00') else when}")
        return " ".join(parts)


@dataclass(frozen=True)
class IngredientInfo:
    title: str
    relationship: str
    format: str
    has_manifest: bool
    state: str  # of its own manifest when it has one: valid / invalid / tampered / ""
    signer: str = ""  # of its own manifest (the chain, one step back)
    actions: tuple[str, ...] = ()  # its own manifest's actions, e.g. ("created", "edited")

    def text(self) -> str:
        cred = f"its own credentials: {self.state}" if self.has_manifest else "no credentials"
        if self.signer:
            cred += f", signed by {self.signer}"
        if self.actions:
            cred += "; " + ", ".join(self.actions)
        return f"{self.title or '(untitled)'} ({self.relationship or 'ingredient'}, {cred})"


@dataclass(frozen=True)
class Credentials:
    state: str  # one of STATES
    signer: str = ""
    issuer: str = ""
    self_issued: bool = False
    time: str = ""  # from a timestamp authority; "" when not timestamped
    generator: str = ""
    title: str = ""
    actions: tuple[ActionInfo, ...] = ()
    ingredients: tuple[IngredientInfo, ...] = ()
    problems: tuple[str, ...] = ()
    manifests: int = 0

    @property
    def state_text(self) -> str:
        return {
            "trusted": "Trusted: intact, signed by a certificate on your trust list",
            "valid": "Valid: intact and correctly signed; the signer is not on a trust list"
            + (" (self-issued)" if self.self_issued else ""),
            "invalid": "Invalid: the credentials do not verify",
            "tampered": "Tampered: the image or its record changed after signing",
            "unreadable": "Unreadable: the credentials are damaged or malformed",
        }[self.state]

    def lines(self) -> list[str]:
        out = [f"State: {self.state_text}"]
        if self.signer or self.issuer:
            out.append(f"Signed by: {self.signer or '?'} (issuer {self.issuer or '?'})")
        out.append(f"Signed at: {self.time or 'not timestamped (no timestamp authority)'}")
        if self.generator:
            out.append(f"Made with: {self.generator}")
        if self.actions:
            out.append("Actions:")
            out += [f"  {i + 1}. {a.text()}" for i, a in enumerate(self.actions)]
        if self.ingredients:
            out.append("Ingredients:")
            out += [f"  - {g.text()}" for g in self.ingredients]
        if self.problems:
            out.append("Problems:")
            out += [f"  - {p}" for p in self.problems]
        return out


def _s(value: Any, limit: int = 300) -> str:
    """A display string from an untrusted JSON value (bounded length, no controls)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = str(value)[:limit]
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any, limit: int = 200) -> list[Any]:
    return value[:limit] if isinstance(value, list) else []


def _codes(results: Any, status: Any) -> list[dict[str, Any]]:
    failures = [_d(f) for f in _l(_d(_d(results).get("activeManifest")).get("failure"))]
    failures += [_d(f) for f in _l(status)]
    return [f for f in failures if _s(f.get("code")) and _s(f.get("code")) not in _INFO_ONLY]


def _state(raw_state: str, failures: Sequence[Mapping[str, Any]]) -> str:
    if any(_s(f.get("code")) in _TAMPER_CODES for f in failures):
        return "tampered"
    low = raw_state.lower()
    if low == "trusted":
        return "trusted"
    if low == "valid" and not failures:
        return "valid"
    return "invalid"


def _action_info(a: Mapping[str, Any]) -> ActionInfo:
    agent = a.get("softwareAgent")
    agent_name = _s(_d(agent).get("name")) if isinstance(agent, dict) else _s(agent)
    params = _d(a.get("parameters"))
    source = _s(a.get("digitalSourceType"))
    return ActionInfo(
        action=_s(a.get("action"), 80),
        description=_s(a.get("description")),
        source_type=source.rstrip("/").rsplit("/", 1)[-1] if source else "",
        agent=agent_name,
        model=_s(params.get("model")),
        model_hash=_s(params.get("model_hash"), 80),
        when=_s(a.get("when"), 40),
    )


def _actions_of(manifest: Mapping[str, Any]) -> list[ActionInfo]:
    actions: list[ActionInfo] = []
    for assertion in _l(manifest.get("assertions")):
        assertion = _d(assertion)
        if _s(assertion.get("label")).startswith("c2pa.actions"):
            actions += [_action_info(_d(a)) for a in _l(_d(assertion.get("data")).get("actions"))]
    return actions


def _ingredient_info(g: Mapping[str, Any], manifests: Mapping[str, Any]) -> IngredientInfo:
    active = _s(g.get("active_manifest"))
    own = _d(manifests.get(active)) if active else {}
    results = g.get("validation_results")
    failures = _codes(results, g.get("validation_status"))
    state = ""
    if active:
        state = "tampered" if any(_s(f.get("code")) in _TAMPER_CODES for f in failures) else (
            "invalid" if failures else "valid")
    return IngredientInfo(
        title=_s(g.get("title")),
        relationship=_s(g.get("relationship"), 40),
        format=_s(g.get("format"), 60),
        has_manifest=bool(active),
        state=state,
        signer=_s(_d(own.get("signature_info")).get("common_name")),
        actions=tuple(a.action.removeprefix("c2pa.") for a in _actions_of(own)[:20]),
    )


def summarize(store: Mapping[str, Any], raw_state: str) -> Credentials:
    """Credentials from a c2pa manifest-store JSON (untrusted: every field is checked)."""
    manifests = _d(store.get("manifests"))
    active = _d(manifests.get(_s(store.get("active_manifest"))))
    failures = _codes(store.get("validation_results"), store.get("validation_status"))
    sig = _d(active.get("signature_info"))
    actions = _actions_of(active)
    gens = [_d(g) for g in _l(active.get("claim_generator_info"))]
    generator = ", ".join(
        f"{_s(g.get('name'))} {_s(g.get('version'))}".strip() for g in gens if g.get("name")
    ) or _s(active.get("claim_generator"))
    issuer = _s(sig.get("issuer"))
    from canvasai.formats.credentials_identity import SELF_ISSUED_ORG

    return Credentials(
        state=_state(raw_state, failures),
        signer=_s(sig.get("common_name")),
        issuer=issuer,
        self_issued=issuer == SELF_ISSUED_ORG,
        time=_s(sig.get("time"), 60),
        generator=generator,
        title=_s(active.get("title")),
        actions=tuple(actions[:100]),
        ingredients=tuple(
            _ingredient_info(_d(g), manifests) for g in _l(active.get("ingredients"), 50)
        ),
        problems=tuple(
            dict.fromkeys(f"{_s(f.get('code'), 80)}: {_s(f.get('explanation'))}" for f in failures)
        )[:20],
        manifests=len(manifests),
    )


def read_credentials(data: bytes, trust_pem: str | None = None) -> Credentials | None:
    """The Content Credentials in an encoded image, validated; None when it carries none.
    Never raises: a manifest the library cannot read is an "unreadable" result."""
    fmt = sniff_format(data)
    if fmt is None:
        return None
    c2pa = _c2pa()
    try:
        ctx = _context(trust_pem=trust_pem)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed trust-anchor file
        log.warning("trust anchors ignored: %s", exc)
        ctx = _context()
    try:
        reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data), None, ctx)
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
            raw_state = _s(reader.get_validation_state())
        return summarize(_d(store), raw_state)
    except Exception as exc:  # noqa: BLE001 - hostile input: report, never crash
        msg = (str(exc).strip() or type(exc).__name__)[:300]
        return Credentials(state="unreadable", problems=(msg,))
    finally:
        ctx.close()


def read_trust_anchors(path: str) -> str | None:
    """The PEM bundle at `path` ("" or unreadable: None; trust stays off)."""
    if not path:
        return None
    try:
        p = Path(path).expanduser()
        if p.stat().st_size > 4 << 20:
            return None
        return p.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def open_image_with_credentials(
    path: str | os.PathLike[str], trust_pem: str | None = None
) -> tuple[Any, Credentials | None]:
    """Open an image as a document (THE image reader, its checks and limits) and read its
    Content Credentials from the same bytes; the document remembers the file as the parent
    ingredient of what is exported from it. A credentials problem never stops the opening."""
    from canvasai.formats.image_io import (
        MAX_IMAGE_FILE_BYTES,
        decode_image,
        document_from_layers,
        image_to_layer,
        read_file_limited,
    )

    p = Path(path)
    data = read_file_limited(p, MAX_IMAGE_FILE_BYTES, "image")
    pixels = decode_image(data, p.name)
    h, w = pixels.shape[:2]
    layer = image_to_layer(pixels, p.stem)
    doc = document_from_layers(w, h, [layer], 0)
    t0 = time.perf_counter()
    creds = None
    if sniff_format(data) is not None:
        creds = read_credentials(data, trust_pem)
        parent = parent_record(data, p.name, layer)
        if parent is not None:
            doc.metadata[PARENT_KEY] = parent
    log.info("credentials of %s read in %.3f s", p.name, time.perf_counter() - t0)
    return doc, creds
