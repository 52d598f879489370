"""``inclavare kbs``: run the key broker service, and look after its database.

    inclavare kbs serve --config FILE [--ready-file PATH] [--log-level LEVEL] [--log-format text|json]
                        [--workers N]
    inclavare kbs check-config FILE
    inclavare kbs keygen --admin OUT.pem | --token OUT.pem | --kek OUT
    inclavare kbs migrate --config FILE [--batch N]
    inclavare kbs rotate-kek --config FILE [--batch N]
    inclavare kbs build-image --output LAYOUT [--ref TAG]

``serve`` reads the TOML config (docs/kbs.md; ``--config`` defaults to
``$INCLAVARE_KBS_CONFIG``) and serves until SIGTERM; SIGHUP reloads
``storage.kek``. ``--ready-file`` gets ``host:port`` once the socket
listens (useful with ``listen = "...:0"``), and systemd ``READY=1`` when
``NOTIFY_SOCKET`` is set; ``--log-format json`` writes one JSON object per
line (kbs/logs.py). ``check-config`` loads what
``serve`` loads before listening (kbs/preflight.py) and fails with the same
line where serve would, without creating anything. ``keygen`` writes a private key
(0600) and prints the public key PEM to put into ``[[admin.keys]]``
(Ed25519) or keeps as the shared token key (P-256); ``--kek`` writes a
key-encryption key (32 random bytes, base64) and prints its id.
``migrate`` seals the resources of a database written before encryption at
rest; ``rotate-kek`` makes ``storage.kek`` the database's active KEK and
re-wraps every data key under it while brokers serve (kbs/atrest/maintenance.py).
Both run in small transactions: interrupted, they are run again.
``build-image`` writes an OCI image of the broker built from this machine's
Python and packages, offline (cli/tool/kbs_image.py).
Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import sys
import time
from typing import TYPE_CHECKING

from ...errors import UsageError
from ._cli import Parser

if TYPE_CHECKING:
    from ...kbs.config import KbsConfig


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare kbs", description="the key broker service (trustee's RCAR protocol)")
    sub = p.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve the KBS (uvicorn; HTTPS when the config has tls_cert/tls_key)")
    serve.add_argument("--config", default=os.environ.get("INCLAVARE_KBS_CONFIG"), help="TOML config file")
    serve.add_argument("--ready-file", help="write host:port here once listening")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", default="text", choices=("text", "json"), help="json: one object per line")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the socket and database (default 1)")
    check = sub.add_parser("check-config", help="parse and validate a config file")
    check.add_argument("config")
    keygen = sub.add_parser("keygen", help="create an admin (Ed25519), token (P-256) or key-encryption key")
    which = keygen.add_mutually_exclusive_group(required=True)
    which.add_argument("--admin", metavar="OUT", help="Ed25519 admin key; prints the public PEM for the config")
    which.add_argument("--token", metavar="OUT", help="P-256 token signing key, shared by all replicas")
    which.add_argument("--kek", metavar="OUT", help="key-encryption key for [storage.kek] (base64); prints its id")
    for name, text in (
        ("migrate", "seal the resources of a database written before encryption at rest"),
        ("rotate-kek", "make storage.kek the active KEK and re-wrap every data key under it"),
    ):
        maint = sub.add_parser(name, help=text)
        maint.add_argument("--config", default=os.environ.get("INCLAVARE_KBS_CONFIG"), help="TOML config file")
        maint.add_argument("--batch", type=int, default=100, help="rows per transaction (default 100)")
    image = sub.add_parser("build-image", help="write an OCI image layout of the broker (this machine's Python)")
    image.add_argument("--output", required=True, help="OCI image layout directory (created)")
    image.add_argument("--ref", default="latest", help="tag (org.opencontainers.image.ref.name)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "keygen":
        return _kek(args.kek) if args.kek else _keygen(args)
    if args.cmd == "build-image":
        from .kbs_image import build

        print(f"{args.output}: {args.ref} {build(args.output, args.ref).digest}")
        return 0
    from ...kbs.config import load_config

    if args.cmd == "check-config":
        from ...kbs.preflight import preflight

        print(f"{args.config}: ok ({preflight(load_config(args.config))})")
        return 0
    if not args.config:
        raise UsageError(f"{args.cmd}: --config is required (or set INCLAVARE_KBS_CONFIG)")
    if args.cmd in ("migrate", "rotate-kek"):
        return _maintain(args.cmd, load_config(args.config), args.batch)
    from ...kbs.logs import configure
    from ...kbs.server import serve

    configure(args.log_level, args.log_format)
    config = load_config(args.config)
    if args.workers != 1:
        from ...kbs.server.workers import serve_workers

        return serve_workers(config, args.workers, ready_file=args.ready_file, config_path=args.config)
    serve(config, ready_file=args.ready_file, config_path=args.config)
    return 0


def _maintain(cmd: str, config: KbsConfig, batch: int) -> int:
    from ...kbs.atrest import load_keyring, maintenance
    from ...kbs.storage import AuditRecord, connect

    if batch < 1:
        raise UsageError(f"{cmd}: --batch must be at least 1")
    now = time.time()
    storage = connect(config.storage, load_keyring(config.storage.kek, config.source))
    try:
        storage.verify_keys(now, config.source, serving=cmd != "migrate")
        event = "resource.seal" if cmd == "migrate" else "resource.rewrap"
        record = AuditRecord(now, event, "ok", subject=f"local:{_who()}", source="local",
                             replica=config.audit.replica)  # fmt: skip
        if cmd == "migrate":
            report = maintenance.migrate(storage, record, batch)
            print(f"migrate: {report.done} resource(s) sealed under KEK {report.state.active}; no plaintext table left")
            return 0
        report = maintenance.rotate(storage, record, batch)
    finally:
        storage.close()
    current = storage.keyring.current.id
    was = "" if report.previous_active in (None, current) else f" (was {report.previous_active})"
    print(f"rotate-kek: KEK {current} is active{was}; {report.done} data key(s) re-wrapped")
    for failure in report.failures:
        sys.stderr.write(f"inclavare kbs: rotate-kek: not re-wrapped: {failure}\n")
    others = {k: n for k, n in report.state.wrapped.items() if k != current}
    if others:
        left = ", ".join(f"{n} under {k}" for k, n in sorted(others.items()))
        sys.stderr.write(f"inclavare kbs: rotate-kek: resources still under other KEKs: {left}\n")
        return 1
    print("rotate-kek: no resource uses another KEK: drop storage.kek.previous and reload the brokers (SIGHUP)")
    return 0


def _who() -> str:
    """Who runs a maintenance command, for its audit records (a uid without a passwd entry is its number)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _kek(out: str) -> int:
    from ...kbs.atrest import kek_id

    key = os.urandom(32)
    _write_private(out, base64.b64encode(key) + b"\n")
    print(f"kek {kek_id(key)}")
    return 0


def _write_private(out: str, data: bytes) -> None:
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"keygen: {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = ed25519.Ed25519PrivateKey.generate() if args.admin else ec.generate_private_key(ec.SECP256R1())
    out = args.admin or args.token
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(out, pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    sys.stdout.write(key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode())
    return 0
