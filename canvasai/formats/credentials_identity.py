"""Who signs CanvasAI's Content Credentials: the person's certificate, or a self-issued one.

A C2PA signer needs an end-entity certificate that chains to a CA (a single
self-signed certificate is refused by the c2pa library), with the digital-signature
key usage and an extended key usage validators accept (emailProtection here).

- `load_identity(cert_chain, private_key)`: the person's own PEM chain (signing
  certificate first, then its CA certificates) and unencrypted PEM private key.
- `self_issued_identity(folder)`: created on first use in ``<data dir>/credentials``:
  a local CA (whose private key is thrown away once the signing certificate is issued:
  nothing can be issued from it later), the signing certificate, and its key in a file
  only its owner may read (mode 0600). Validators report such credentials as *valid*
  (intact, signed by this key) but never *trusted*: no public trust list knows this
  CA. The certificate's organisation says so: "CanvasAI (self-issued)".

No Qt, no network.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from canvasai.core.errors import CanvasAIError, FileFormatError
from canvasai.formats.atomic import atomic_write_bytes

SELF_ISSUED_ORG = "CanvasAI (self-issued)"
DEFAULT_SIGNER_NAME = "CanvasAI user"
CHAIN_FILE = "signing-chain.pem"
KEY_FILE = "signing-key.pem"
CA_FILE = "local-ca.pem"
VALID_DAYS = 5 * 365
RENEW_BEFORE_DAYS = 30
MAX_PEM_BYTES = 1 << 20


class CredentialsError(CanvasAIError):
    """A signing identity cannot be loaded or made; the message says why in plain words."""


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes  # signing certificate first, then its CA chain
    key_pem: bytes
    alg: str  # c2pa algorithm name: es256, es384, es512, ps256, ed25519
    subject: str  # the signing certificate's common name
    issuer: str  # its issuer's organisation (or common name)
    not_after: dt.datetime
    self_issued: bool
    where: str  # where it came from, for messages

    def describe(self) -> str:
        kind = "self-issued by CanvasAI (shows as valid, not trusted)" if self.self_issued else "your certificate"
        return f"{self.subject} — {kind}, until {self.not_after:%Y-%m-%d}"


def _read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > MAX_PEM_BYTES:
            raise CredentialsError(f"The {what} “{p}” is too large to be a PEM file.")
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise CredentialsError(f"The {what} “{p}” does not exist.") from exc
    except OSError as exc:
        raise CredentialsError(f"The {what} “{p}” cannot be read: {exc.strerror or exc}.") from exc


def _name_of(name: object) -> str:
    from cryptography.x509.oid import NameOID

    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attrs = name.get_attributes_for_oid(oid)  # type: ignore[attr-defined]
        if attrs:
            return str(attrs[0].value)
    return name.rfc4514_string()  # type: ignore[attr-defined]


def _alg_for(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in algs:
            raise CredentialsError(
                f"The private key uses the curve {key.curve.name}; C2PA signs with P-256, "
                "P-384 or P-521 (or RSA, Ed25519)."
            )
        return algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise CredentialsError("The private key is of a kind C2PA cannot sign with (use EC, RSA or Ed25519).")


def identity_from_pem(chain_pem: bytes, key_pem: bytes, where: str = "") -> SigningIdentity:
    """Check a PEM chain and key belong together and say which algorithm they sign with."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise CredentialsError(f"The certificate chain {where} holds no readable PEM certificate.") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:
        raise CredentialsError(
            f"The private key {where} is protected by a password; CanvasAI needs an unencrypted key "
            "(keep the file readable only by you)."
        ) from exc
    except ValueError as exc:
        raise CredentialsError(f"The private key {where} is not a readable PEM private key.") from exc
    leaf = certs[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CredentialsError(
            f"The private key {where} does not belong to the first certificate of the chain."
        )
    if len(certs) < 2:
        raise CredentialsError(
            f"The certificate {where} comes without its CA certificate: C2PA refuses a lone "
            "(self-signed) certificate. Put the signing certificate first, then its CA chain."
        )
    now = dt.datetime.now(dt.timezone.utc)
    if leaf.not_valid_after_utc < now:
        raise CredentialsError(
            f"The signing certificate {where} expired on {leaf.not_valid_after_utc:%Y-%m-%d}."
        )
    return SigningIdentity(
        chain_pem=chain_pem,
        key_pem=key_pem,
        alg=_alg_for(key),
        subject=_name_of(leaf.subject),
        issuer=_name_of(leaf.issuer),
        not_after=leaf.not_valid_after_utc,
        self_issued=_is_self_issued(leaf),
        where=where,
    )


def _is_self_issued(cert: object) -> bool:
    from cryptography.x509.oid import NameOID

    orgs = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)  # type: ignore[attr-defined]
    return any(a.value == SELF_ISSUED_ORG for a in orgs)


def load_identity(cert_chain: str | os.PathLike[str], private_key: str | os.PathLike[str]) -> SigningIdentity:
    """The person's own identity from a PEM chain file and a PEM key file."""
    return identity_from_pem(
        _read_pem(cert_chain, "certificate chain"),
        _read_pem(private_key, "private key"),
        f"“{Path(cert_chain).name}”",
    )


def _issue(name: str) -> tuple[bytes, bytes, bytes]:
    """A fresh local CA and a signing certificate issued by it: (chain, key, ca) as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} — local CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_ISSUED_ORG),
        ]
    )

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
            crl_sign=not sign, encipher_only=False, decipher_only=False,
        )

    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_ISSUED_ORG),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, key_pem, ca.public_bytes(pem)


def _write_private(path: Path, data: bytes) -> None:
    """Write a key file readable only by its owner (0600 from the start, then renamed in)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def self_issued_identity(folder: str | os.PathLike[str], name: str = "") -> SigningIdentity:
    """The per-installation identity in `folder`, made on first use (or when it is missing,
    unreadable, about to expire, or was made for another name)."""
    d = Path(folder)
    name = name.strip() or DEFAULT_SIGNER_NAME
    chain_p, key_p = d / CHAIN_FILE, d / KEY_FILE
    if chain_p.is_file() and key_p.is_file():
        try:
            ident = identity_from_pem(chain_p.read_bytes(), key_p.read_bytes(), "(self-issued)")
            soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=RENEW_BEFORE_DAYS)
            if ident.not_after > soon and ident.subject == name:
                if os.name == "posix" and key_p.stat().st_mode & 0o077:
                    os.chmod(key_p, 0o600)
                return ident
        except (CredentialsError, OSError):
            pass  # made again below
    try:
        d.mkdir(parents=True, exist_ok=True)
        chain, key_pem, ca = _issue(name)
        _write_private(key_p, key_pem)
        atomic_write_bytes(chain_p, chain)
        atomic_write_bytes(d / CA_FILE, ca)
    except FileFormatError as exc:
        raise CredentialsError(f"CanvasAI could not store its signing certificate: {exc}") from exc
    except OSError as exc:
        raise CredentialsError(
            f"CanvasAI could not store its signing certificate in “{d}”: {exc.strerror or exc}."
        ) from exc
    return identity_from_pem(chain, key_pem, "(self-issued)")
