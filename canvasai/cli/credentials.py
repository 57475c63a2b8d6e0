"""`canvasai credentials FILE`: print an image's Content Credentials and their validation.

Reads the file with the app's limits, validates its C2PA manifest offline (no remote
manifest, no OCSP) and prints who signed it, when, the actions and ingredients, and the
state: trusted / valid / invalid / tampered / unreadable. ``--json`` prints the same as
JSON. Certificates in the ``credentials/trust_anchors`` setting (a PEM bundle) count as
trusted.

Exit codes: 0 trusted or valid; 1 invalid, tampered or unreadable credentials; 2 the
file cannot be read; 3 the file carries no Content Credentials.

Also here: `model_path`, how the CLI turns a model name from a generation record into
the file or folder whose header is hashed for the manifest (THE model registry).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from canvasai.core import settings
from canvasai.core.errors import CanvasAIError
from canvasai.formats.credentials import read_credentials, read_trust_anchors
from canvasai.formats.image_io import MAX_IMAGE_FILE_BYTES, read_file_limited

NO_CREDENTIALS = 3


def model_path(name: str) -> Path | None:
    """The file or folder of a registry model (None when the registry does not know it)."""
    from canvasai.backends.models import registry

    info = registry().get(name)
    return info.path if info is not None else None


def add_credentials_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "credentials",
        help="print an image's Content Credentials (C2PA) and whether they validate",
        description=(
            "Print who signed an image, when, what was done to it and with which models, its "
            "ingredients, and the validation state (trusted, valid, invalid, tampered). "
            "Exit code 0 trusted/valid, 1 invalid/tampered/unreadable, 2 unreadable file, "
            "3 no credentials."
        ),
    )
    p.add_argument("file", help="a PNG, JPEG, WebP or TIFF image")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run_credentials)
    return p


def run_credentials(args: argparse.Namespace) -> int:
    try:
        data = read_file_limited(args.file, MAX_IMAGE_FILE_BYTES, "image")
    except CanvasAIError as exc:
        print(f"canvasai credentials: {exc}", file=sys.stderr)
        return 2
    trust = read_trust_anchors(settings.current().credentials.trust_anchors)
    creds = read_credentials(data, trust)
    name = Path(args.file).name
    if creds is None:
        if args.json:
            print(json.dumps({"file": name, "state": None}))
        else:
            print(f"{name}: no Content Credentials")
        return NO_CREDENTIALS
    if args.json:
        print(json.dumps({"file": name} | dataclasses.asdict(creds), indent=1))
    else:
        print(f"{name}: Content Credentials")
        for line in creds.lines():
            print(f"  {line}")
    return 0 if creds.state in ("trusted", "valid") else 1
