"""Content Credentials (C2PA): exports validate with the real c2pa Reader, carry the
expected actions, source types, models and ingredient; tampering is detected; the chain
holds through open -> paint -> export; unsigned exports still go out; hostile manifests
in opened images are reported, never crash, never block opening. No network anywhere
(no timestamp authority, no remote manifests, no OCSP)."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from types import SimpleNamespace

import c2pa
import numpy as np
import pytest

from canvasai.core import settings
from canvasai.document.document import Document
from canvasai.document.layer import Layer
from canvasai.formats import credentials as cr
from canvasai.formats.credentials_identity import (
    KEY_FILE,
    SELF_ISSUED_ORG,
    CredentialsError,
    identity_from_pem,
    self_issued_identity,
)
from canvasai.formats.export import ExportOptions, export_flattened, export_layers

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return self_issued_identity(tmp_path_factory.mktemp("ident"), "Test Painter")


@pytest.fixture
def model_file(tmp_path):
    """A fake single-file checkpoint: an 8-byte length, a JSON header, then 'weights'."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    p = tmp_path / "dream.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    return p


def gen(task: str, model: str, t: float, **extra) -> dict:
    return {"prompt": "a lighthouse", "seed": 7, "steps": 4, "task": task, "model": model,
            "backend": "diffusers", "time": t, **extra}


def block(layer: Layer, x: int, y: int, color, size: int = 16) -> Layer:
    layer.surface.write(x, y, np.full((size, size, 4), color, np.uint8))
    return layer


def ai_document(model: str) -> Document:
    """txt2img result, a person's painting over it, then an inpaint with another model."""
    doc = Document(64, 64)
    doc.layers[1] = block(Layer("Painted"), 30, 30, (0, 0, 255, 255))
    doc.layers.insert(1, block(Layer("Generated", generation=gen("txt2img", model, 100.0)),
                               0, 0, (200, 10, 10, 255), 64))
    doc.layers.append(block(Layer("Inpaint", generation=gen("inpaint", "other-model", 200.0)),
                            5, 5, (0, 200, 0, 255)))
    return doc


def store_of(data: bytes, mime: str = "image/png", trust: str | None = None) -> tuple[dict, str]:
    cfg = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust:
        cfg["trust"] = {"user_anchors": trust}
    with c2pa.Reader(mime, io.BytesIO(data), context=c2pa.Context.from_dict(cfg)) as r:
        return json.loads(r.json()), r.get_validation_state()


def active(store: dict) -> dict:
    return store["manifests"][store["active_manifest"]]


def actions(store: dict) -> list[dict]:
    for a in active(store)["assertions"]:
        if a["label"].startswith("c2pa.actions"):
            return a["data"]["actions"]
    return []


def creds(identity, model_file=None) -> cr.ContentCredentials:
    def resolve(name: str):
        return model_file if model_file and name == "dream" else None

    return cr.ContentCredentials(identity, resolve_model=resolve)


# ------------------------------------------------------------------------------- exports
@pytest.mark.parametrize("suffix,mime", [(".png", "image/png"), (".jpg", "image/jpeg"),
                                         (".webp", "image/webp"), (".tiff", "image/tiff")])
def test_export_carries_a_manifest_the_c2pa_reader_validates(tmp_path, identity, model_file,
                                                            suffix, mime):
    out = tmp_path / f"out{suffix}"
    c = creds(identity, model_file)
    export_flattened(ai_document("dream"), out, credentials=c)
    assert c.outcomes and c.outcomes[0].signed, c.outcomes
    store, state = store_of(out.read_bytes(), mime)
    assert state == "Valid"  # self-issued: intact and signed, not trusted
    m = active(store)
    assert m["claim_generator_info"][0]["name"] == "CanvasAI"
    assert m["signature_info"]["issuer"] == SELF_ISSUED_ORG
    acts = actions(store)
    assert [a["action"] for a in acts] == ["c2pa.created", "c2pa.edited", "c2pa.edited"]
    created, painted, inpaint = acts
    assert created["digitalSourceType"] == IPTC + "trainedAlgorithmicMedia"
    assert created["parameters"]["model"] == "dream"
    assert created["parameters"]["model_hash"] == cr.model_identity(model_file)
    assert painted["digitalSourceType"] == IPTC + "humanEdits"
    assert inpaint["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert inpaint["parameters"]["model"] == "other-model"
    assert inpaint["parameters"]["task"] == "inpaint"


def test_read_credentials_summarises_and_trust_anchor_makes_it_trusted(tmp_path, identity):
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out, credentials=creds(identity))
    data = out.read_bytes()
    got = cr.read_credentials(data)
    assert got.state == "valid" and got.self_issued and got.signer == "Test Painter"
    assert [a.action for a in got.actions][0] == "c2pa.created"
    assert any("not timestamped" in line for line in got.lines())
    ca_pem = identity.chain_pem.decode().split("-----END CERTIFICATE-----\n", 1)[1]
    assert cr.read_credentials(data, trust_pem=ca_pem).state == "trusted"


def _png_chunks(data: bytes):
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        yield pos, data[pos + 4:pos + 8], n
        pos += 12 + n


def test_one_changed_pixel_byte_is_reported_as_tampered(tmp_path, identity):
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out, ExportOptions(format="png"),
                     credentials=creds(identity))
    data = bytearray(out.read_bytes())
    pos, _kind, n = next(c for c in _png_chunks(bytes(data)) if c[1] == b"IDAT")
    data[pos + 8 + n // 2] ^= 0x01
    data[pos + 8 + n:pos + 12 + n] = struct.pack(">I", zlib.crc32(data[pos + 4:pos + 8 + n]))
    got = cr.read_credentials(bytes(data))
    assert got.state == "tampered", got
    assert any("dataHash.mismatch" in p for p in got.problems)
    _store, state = store_of(bytes(data))
    assert state == "Invalid"


def test_jpeg_byte_change_is_tampered(tmp_path, identity):
    out = tmp_path / "x.jpg"
    export_flattened(ai_document("dream"), out, credentials=creds(identity))
    data = bytearray(out.read_bytes())
    data[-100] ^= 0x01  # inside the entropy-coded scan, before EOI
    assert cr.read_credentials(bytes(data)).state == "tampered"


def test_chain_holds_through_open_paint_export(tmp_path, identity):
    first = tmp_path / "first.png"
    doc = Document(48, 48)
    doc.layers[1].generation = gen("txt2img", "dream", 50.0)
    block(doc.layers[1], 0, 0, (10, 10, 200, 255), 48)
    export_flattened(doc, first, credentials=creds(identity))

    opened, seen = cr.open_image_with_credentials(first)
    assert seen is not None and seen.state == "valid"
    assert cr.PARENT_KEY in opened.metadata
    # The untouched original is no painting of ours: only "opened".
    c = creds(identity)
    untouched = tmp_path / "untouched.png"
    export_flattened(opened, untouched, credentials=c)
    assert [a["action"] for a in actions(store_of(untouched.read_bytes())[0])] == ["c2pa.opened"]

    layer = opened.add_layer("Paint")
    opened.write_pixels(layer, 4, 4, np.full((8, 8, 4), (255, 255, 0, 255), np.uint8))
    second = tmp_path / "second.png"
    export_flattened(opened, second, credentials=creds(identity))
    store, state = store_of(second.read_bytes())
    assert state == "Valid"
    assert len(store["manifests"]) == 2  # the original's manifest is chained in
    acts = actions(store)
    assert [a["action"] for a in acts] == ["c2pa.opened", "c2pa.edited"]
    assert acts[1]["digitalSourceType"] == IPTC + "humanEdits"
    (ingredient,) = active(store)["ingredients"]
    assert ingredient["relationship"] == "parentOf" and ingredient["title"] == "first.png"
    assert ingredient["active_manifest"] in store["manifests"]
    got = cr.read_credentials(second.read_bytes())
    assert got.ingredients[0].has_manifest and got.ingredients[0].state == "valid"
    assert got.ingredients[0].signer == "Test Painter"
    assert got.ingredients[0].actions == ("created",)  # one step back along the chain


def test_opened_image_without_credentials_is_still_the_parent(tmp_path, identity):
    from PIL import Image

    src = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 24), (90, 120, 30)).save(src)
    doc, seen = cr.open_image_with_credentials(src)
    assert seen is None
    out = tmp_path / "out.png"
    export_flattened(doc, out, credentials=creds(identity))
    store, _ = store_of(out.read_bytes())
    (ingredient,) = active(store)["ingredients"]
    assert ingredient["title"] == "photo.jpg" and "active_manifest" not in ingredient


def test_layers_export_signs_each_file(tmp_path, identity):
    c = creds(identity)
    paths = export_layers(ai_document("dream"), tmp_path / "layers", credentials=c)
    assert len(c.outcomes) == len(paths) and all(o.signed for o in c.outcomes)
    for p in paths:
        assert cr.read_credentials(p.read_bytes()).state == "valid"


def test_classic_backend_is_not_called_ai():
    doc = Document(16, 16)
    doc.layers[1] = block(Layer("Classic", generation=gen("inpaint", "classic", 1.0,
                                                          backend="classic")), 0, 0, (1, 2, 3, 255))
    acts = cr.actions_for(doc.layers)
    assert acts[-1]["digitalSourceType"] == IPTC + "algorithmicMedia"
    assert "no trained model" in acts[-1]["description"]


def test_blank_canvas_and_plain_painting_are_created_not_ai():
    doc = Document(16, 16)
    assert cr.actions_for(doc.layers)[0]["digitalSourceType"] == cr.EMPTY
    block(doc.layers[1], 0, 0, (9, 9, 9, 255), 4)
    (created,) = cr.actions_for(doc.layers)
    assert created["digitalSourceType"] == IPTC + "digitalArt"


# ------------------------------------------------------------------------ unsigned fallback
def test_no_identity_and_no_key_still_exports_and_says_unsigned(tmp_path):
    cs = SimpleNamespace(sign=True, cert_chain=str(tmp_path / "missing.pem"), private_key="",
                         signer_name="", tsa_url="", trust_anchors="")
    c = cr.ContentCredentials.from_settings(cs)
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out, credentials=c)
    assert out.exists() and cr.read_credentials(out.read_bytes()) is None
    (outcome,) = c.outcomes
    assert not outcome.signed and "not signed" in outcome.message
    assert "private key" in outcome.message
    assert "not signed" in c.summary()


def test_a_failing_signer_never_blocks_the_export(tmp_path, identity, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("the signing library fell over")

    monkeypatch.setattr(cr, "sign_bytes", boom)
    c = creds(identity)
    out = tmp_path / "x.jpg"
    export_flattened(ai_document("dream"), out, credentials=c)
    assert out.stat().st_size > 0
    assert "fell over" in c.outcomes[0].message and not c.outcomes[0].signed


def test_signing_off_and_metadata_off(tmp_path, identity):
    c = cr.ContentCredentials.disabled()
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out, credentials=c)
    assert cr.read_credentials(out.read_bytes()) is None and "turned off" in c.outcomes[0].message
    c2 = creds(identity)
    export_flattened(ai_document("dream"), out, ExportOptions(metadata=False), credentials=c2)
    assert cr.read_credentials(out.read_bytes()) is None and c2.outcomes == []


def test_default_export_signs_from_the_settings_with_a_self_issued_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path / "data"))
    settings.reset(settings.MemoryStore())
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out)
    got = cr.read_credentials(out.read_bytes())
    assert got.state == "valid" and got.self_issued and got.signer == "CanvasAI user"
    key = tmp_path / "data" / "credentials" / KEY_FILE
    assert key.exists()
    if os.name == "posix":
        assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("CANVASAI_SIGN_EXPORTS", "0")
    settings.reset(settings.MemoryStore())
    export_flattened(ai_document("dream"), out)
    assert cr.read_credentials(out.read_bytes()) is None


# ----------------------------------------------------------------------------- identities
def test_self_issued_identity_is_made_once_and_reused(tmp_path):
    a = self_issued_identity(tmp_path, "Ann")
    b = self_issued_identity(tmp_path, "Ann")
    assert a.chain_pem == b.chain_pem and a.self_issued and "self-issued" in a.describe()
    assert self_issued_identity(tmp_path, "Bob").subject == "Bob"  # renamed: made again


def test_identity_checks_are_plain_words(identity):
    other = self_issued_identity_pem_pair()
    with pytest.raises(CredentialsError, match="does not belong"):
        identity_from_pem(identity.chain_pem, other[1])
    leaf_only = identity.chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    with pytest.raises(CredentialsError, match="without its CA"):
        identity_from_pem(leaf_only, identity.key_pem)
    with pytest.raises(CredentialsError, match="no readable PEM"):
        identity_from_pem(b"junk", identity.key_pem)


def self_issued_identity_pem_pair(name: str = "Other") -> tuple[bytes, bytes]:
    from canvasai.formats.credentials_identity import _issue

    chain, key, _ca = _issue(name)
    return chain, key


def test_model_identity_reads_headers_only_and_is_cached(tmp_path, model_file):
    first = cr.model_identity(model_file)
    assert first and first.startswith("sha256:")
    assert cr.model_identity(model_file) == first
    folder = tmp_path / "pipe"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "w.safetensors").write_bytes(model_file.read_bytes())
    assert cr.model_identity(folder) not in (None, first)
    assert cr.model_identity(tmp_path / "nothing") is None


# -------------------------------------------------------------------------- hostile input
def _png_with_chunk(data: bytes, kind: bytes, payload: bytes, replace: bytes | None = None) -> bytes:
    """`data` with a chunk `kind` (correct length and CRC) inserted after IHDR, or replacing
    the existing chunk `replace`."""
    out = bytearray(data[:8])
    new = struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))
    inserted = False
    for pos, k, n in _png_chunks(data):
        chunk = data[pos:pos + 12 + n]
        if replace is not None and k == replace:
            out += new
            inserted = True
            continue
        out += chunk
        if replace is None and k == b"IHDR" and not inserted:
            out += new
            inserted = True
    return bytes(out)


def _signed_png(tmp_path, identity) -> bytes:
    out = tmp_path / "signed.png"
    export_flattened(ai_document("dream"), out, credentials=creds(identity))
    return out.read_bytes()


def _cabx(data: bytes) -> bytes:
    pos, _k, n = next(c for c in _png_chunks(data) if c[1] == b"caBX")
    return data[pos + 8:pos + 8 + n]


def _hostile_cases(tmp_path, identity) -> dict[str, bytes]:
    signed = _signed_png(tmp_path, identity)
    manifest = _cabx(signed)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ours = x509.load_pem_x509_certificates(identity.chain_pem)[0].public_bytes(Encoding.DER)
    for _ in range(40):  # another well-formed certificate of the same DER length
        other_chain, _key = self_issued_identity_pem_pair(identity.subject)
        theirs = x509.load_pem_x509_certificates(other_chain)[0].public_bytes(Encoding.DER)
        if len(theirs) == len(ours):
            break
    swapped = manifest.replace(ours, theirs[: len(ours)].ljust(len(ours), b"\0"))
    assert swapped != manifest
    rng = np.random.default_rng(1)
    return {
        "truncated": _png_with_chunk(signed, b"caBX", manifest[: len(manifest) // 2], b"caBX"),
        "huge": _png_with_chunk(signed, b"caBX", manifest[:64] + rng.bytes(24 << 20), b"caBX"),
        "wrong certificate": _png_with_chunk(signed, b"caBX", swapped, b"caBX"),
        "garbage": _png_with_chunk(signed, b"caBX", rng.bytes(4096), b"caBX"),
        "jumbf lies about sizes": _png_with_chunk(
            signed, b"caBX", struct.pack(">I", 0xFFFFFFF0) + b"jumb" + manifest[8:200], b"caBX"),
    }


def test_hostile_manifests_are_reported_never_crash_never_block_opening(tmp_path, identity):
    for name, data in _hostile_cases(tmp_path, identity).items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        doc, got = cr.open_image_with_credentials(path)
        assert (doc.width, doc.height) == (64, 64), name
        assert got is None or got.state in ("unreadable", "invalid", "tampered"), (name, got)
        if got is not None:
            assert got.lines()[0].startswith("State:")
        if name == "wrong certificate":  # well-formed, but not the key that signed
            assert got.state == "invalid" and any("claimSignature" in p for p in got.problems)
        # And exporting what was opened still works (signed, or unsigned with a reason).
        c = creds(identity)
        export_flattened(doc, tmp_path / f"{name}-out.png", credentials=c)
        assert c.outcomes and (tmp_path / f"{name}-out.png").exists()


def test_summarize_survives_nonsense_json():
    for store in ({}, {"manifests": []}, {"active_manifest": 5, "manifests": {"5": "x"}},
                  {"active_manifest": "a", "manifests": {"a": {"assertions": [1, None, {
                      "label": "c2pa.actions", "data": {"actions": ["x", {"action": 3}]}}],
                      "signature_info": [], "ingredients": "no"}}}):
        got = cr.summarize(store, "Valid")
        assert got.state in cr.STATES
        got.lines()


def test_parent_survives_saving_the_project(tmp_path, identity):
    from canvasai.formats.ora import load_ora, save_ora

    first = tmp_path / "first.png"
    export_flattened(ai_document("dream"), first, credentials=creds(identity))
    doc, _ = cr.open_image_with_credentials(first)
    save_ora(doc, tmp_path / "p.ora")
    again = load_ora(tmp_path / "p.ora")
    out = tmp_path / "out.png"
    export_flattened(again, out, credentials=creds(identity))
    got = cr.read_credentials(out.read_bytes())
    assert got.actions[0].action == "c2pa.opened" and got.ingredients[0].has_manifest


def test_unreachable_timestamp_authority_leaves_the_export_unsigned(tmp_path, identity):
    # Port 9 on the loopback: refused at once, nothing leaves this machine.
    c = cr.ContentCredentials(identity, tsa_url="http://127.0.0.1:9/tsa")
    out = tmp_path / "x.png"
    export_flattened(ai_document("dream"), out, credentials=c)
    assert out.exists() and cr.read_credentials(out.read_bytes()) is None
    assert not c.outcomes[0].signed and "not signed" in c.outcomes[0].message
