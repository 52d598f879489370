"""``inclavare signing-server``: keep enclave signing keys off the nodes.

    inclavare signing-server serve --key PEM [--listen [HOST]:PORT] --tls-cert PEM --tls-key PEM
                                   [--client-ca PEM] [--tokens FILE] [--audit-log FILE] [--ready-file PATH]
                                   [--insecure-http] [--no-auth] [--log-level LEVEL]
    inclavare signing-server keygen [--algorithm rsa3072|ed25519] OUT
    inclavare signing-server token NAME --out TOKEN_FILE

``serve`` speaks the original shim's API (``/api/v1/signature/public-key``,
``/api/v1/signature/pkcs1``, ``/ping``, ``/healthz``, ``HEAD /``) plus
``/api/v1/signature/ed25519``, on :9080 by default, and needs TLS and an
authenticated caller (tokens and/or client certificates) unless told
otherwise. ``keygen`` writes a private key (0600; RSA-3072 with e = 3 as SGX
wants, or Ed25519) and prints its public key and MRSIGNER. ``token`` writes
a new random token (0600) for a node's ``[signature] token_file`` and prints
the line to add to the server's ``--tokens`` file. See
src/inclavare/carrier/signing_server and docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys

from ...errors import UsageError
from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare signing-server", description="serve enclave signatures to carriers")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve until SIGTERM")
    s.add_argument("--key", default="/etc/signature/pki/privatekey.pem", help="RSA-3072 or Ed25519 private key (PEM)")
    s.add_argument("--listen", default=":9080", metavar="[HOST]:PORT", help="default :9080, as the original")
    s.add_argument("--tls-cert", metavar="PEM")
    s.add_argument("--tls-key", metavar="PEM")
    s.add_argument("--client-ca", metavar="PEM", help="require client certificates issued by this CA (mTLS)")
    s.add_argument("--tokens", metavar="FILE", help="bearer tokens: NAME sha256:<hex> per line")
    s.add_argument("--audit-log", metavar="FILE", help="append audit lines here (default: stderr)")
    s.add_argument("--ready-file", metavar="PATH", help="write host:port here once listening")
    s.add_argument("--insecure-http", action="store_true", help="allow plain HTTP (the original's behaviour)")
    s.add_argument("--no-auth", action="store_true", help="sign for anyone (the original's behaviour)")
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    k = sub.add_parser("keygen", help="write a new signing key and print its public key and MRSIGNER")
    k.add_argument("out", metavar="OUT")
    k.add_argument("--algorithm", default="rsa3072", choices=("rsa3072", "ed25519"))
    t = sub.add_parser("token", help="make a bearer token for a node")
    t.add_argument("name", metavar="NAME")
    t.add_argument("--out", required=True, metavar="TOKEN_FILE", help="where the node's token goes (0600)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        return _keygen(args.out, args.algorithm)
    if args.command == "token":
        from ...carrier.signing_server.auth import token_line

        token = secrets.token_urlsafe(32)
        line = token_line(args.name, token)
        _create(args.out, token.encode() + b"\n")
        sys.stdout.write(line + "\n")
        return 0
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    from ...carrier.signing_server import make_server, serve

    server = make_server(key=args.key, listen=_address(args.listen), tls_cert=args.tls_cert, tls_key=args.tls_key,
                         client_ca=args.client_ca, tokens=args.tokens, audit_log=args.audit_log,
                         insecure_http=args.insecure_http, no_auth=args.no_auth)  # fmt: skip
    serve(server, args.ready_file)
    return 0


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"serve: --listen {text!r}: expected [HOST]:PORT")
    return host.strip("[]"), int(port)


def _keygen(out: str, algorithm: str) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from ...enclave.identity.identity import signer_id

    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=3, key_size=3072)  # e = 3: SGX SIGSTRUCT's exponent
    pkcs8 = serialization.PrivateFormat.PKCS8
    _create(out, key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    sys.stdout.write(key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode())
    sys.stdout.write(f"MRSIGNER {signer_id(key.public_key().public_bytes(serialization.Encoding.DER, spki)).hex()}\n")
    return 0


def _create(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
