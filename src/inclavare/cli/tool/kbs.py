"""``inclavare kbs``: run the key broker service.

    inclavare kbs serve --config FILE [--ready-file PATH] [--log-level LEVEL]
    inclavare kbs check-config FILE
    inclavare kbs keygen --admin OUT.pem | --token OUT.pem

``serve`` reads the TOML config (docs/kbs.md; ``--config`` defaults to
``$INCLAVARE_KBS_CONFIG``) and serves until SIGTERM. ``--ready-file`` gets
``host:port`` once the socket listens (useful with ``listen = "...:0"``).
``keygen`` writes a private key (0600) and prints the public key PEM to put
into ``[[admin.keys]]`` (Ed25519) or keeps as the shared token key (P-256).
Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ...errors import UsageError
from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare kbs", description="the key broker service (trustee's RCAR protocol)")
    sub = p.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve the KBS (uvicorn; HTTPS when the config has tls_cert/tls_key)")
    serve.add_argument("--config", default=os.environ.get("INCLAVARE_KBS_CONFIG"), help="TOML config file")
    serve.add_argument("--ready-file", help="write host:port here once listening")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    check = sub.add_parser("check-config", help="parse and validate a config file")
    check.add_argument("config")
    keygen = sub.add_parser("keygen", help="create an admin (Ed25519) or token (P-256) key")
    which = keygen.add_mutually_exclusive_group(required=True)
    which.add_argument("--admin", metavar="OUT", help="Ed25519 admin key; prints the public PEM for the config")
    which.add_argument("--token", metavar="OUT", help="P-256 token signing key, shared by all replicas")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "keygen":
        return _keygen(args)
    from ...kbs.config import load_config

    if args.cmd == "check-config":
        config = load_config(args.config)
        print(f"{args.config}: ok ({config.storage.type} storage, {len(config.admin_keys)} admin key(s))")
        return 0
    if not args.config:
        raise UsageError("serve: --config is required (or set INCLAVARE_KBS_CONFIG)")
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ...kbs.server import serve

    serve(load_config(args.config), ready_file=args.ready_file)
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = ed25519.Ed25519PrivateKey.generate() if args.admin else ec.generate_private_key(ec.SECP256R1())
    out = args.admin or args.token
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"keygen: {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    sys.stdout.write(key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode())
    return 0
