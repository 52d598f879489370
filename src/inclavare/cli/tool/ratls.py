"""``inclavare ratls``: the attested TLS sample server and client (rats-tls's samples; docs/ratls.md).

    inclavare ratls server [-a ATTESTER] [-i IP] [-p PORT] [-m] [--policy FILE] [--allow-software]
                           [--collateral PATH]... [--count N] [--reply raw|json] [attester options]
    inclavare ratls client [-a ATTESTER] [-i IP] [-p PORT] [-m] [--policy FILE] [--allow-software]
                           [--collateral PATH]... [--message TEXT] [attester options]

The server proves itself with ``-a`` (software, sgx, tdx, sev-snp; rats-tls
names sgx_ecdsa, tdx_ecdsa, sev_snp work too), accepts connections, receives
one message per connection and replies like the skeleton TLS server
(the original's skeleton PAL in TLS_SERVER mode): ``raw`` = MEASUREMENT || SIGNER || message (MRENCLAVE(32) ||
MRSIGNER(32) for SGX and software; the signer is zero-filled to the
measurement's size where the TEE has none), or ``json`` =
``{"tee", "measurement", "signer", "message"}``. It prints one JSON line per
connection on stdout (the client's verified claims in mutual mode) and
``listening on IP:PORT`` on stderr (``-p 0`` picks a free port).

The client verifies the server, sends the message, and prints the verified
claims and the decoded reply as JSON; ``reply_matches_evidence`` says whether
the echoed measurement is the one it verified. ``-m`` makes both sides prove
themselves (the client then needs ``-a`` too).

Appraisal: ``--policy FILE`` (see :mod:`inclavare.attestation.policy`), else
any genuine hardware evidence; ``--allow-software`` accepts software
evidence from host keys in ``--collateral`` and, if its file exists, this
host's own key (``--host-key``). Software attester options: ``--manifest``,
``--rootfs``, ``--sig`` (a signed enclave, verified first), ``--host-key``.
TDX/SNP: ``--tsm-root``, ``--privlevel``. SGX: ``--pal``, ``--pal-args``,
``--aesm-socket``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
from typing import TYPE_CHECKING

from ...attestation import CollateralStore, Policy, VerifiedClaims
from ...attestation.attesters import ALIASES, REGISTRY, Attester, AttesterOptions, create
from ...attestation.attesters.interface import DEFAULT_AESM_SOCKET, DEFAULT_TSM_ROOT
from ...attestation.attesters.peek import claimed
from ...attestation.hazmat.hextext import from_hex
from ...attestation.ratls import AttestedSocket, RatlsError, VerifyPolicy, accept, client_context, connect
from ...attestation.ratls import server_context as make_server_context
from ...attestation.ratls.certificate import KEY_ALGORITHMS
from ...enclave.identity import DEFAULT_HOST_KEY, HostKey
from ...errors import InclavareError, UsageError
from ._cli import Parser, enclave_attester

if TYPE_CHECKING:
    from ...enclave.interface import EnclaveRuntime

GREETING = "Hello and welcome to RATS-TLS!\n"  # what the rats-tls sample client sends
MAX_MESSAGE = 64 << 10


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare ratls", description="attested TLS sample server and client")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("server", "client"):
        c = sub.add_parser(name, help=f"the rats-tls sample {name}")
        c.add_argument("-a", "--attester", default="software" if name == "server" else None, metavar="NAME",
                       choices=[*REGISTRY, *ALIASES], help="how this side proves itself")  # fmt: skip
        c.add_argument("-i", "--ip", default="127.0.0.1")
        c.add_argument("-p", "--port", type=int, default=1234)
        c.add_argument("-m", "--mutual", action="store_true", help="both sides prove themselves")
        c.add_argument("--policy", metavar="FILE", help="appraisal policy for the peer (JSON or TOML)")
        c.add_argument("--allow-software", action="store_true", help="accept software evidence from the peer")
        c.add_argument("--collateral", action="append", default=[], metavar="PATH", help="collateral / host keys")
        c.add_argument("--cert-algo", default="ec-p256", choices=KEY_ALGORITHMS, help="certificate key")
        c.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
        c.add_argument("--manifest", help="software attester: the signed enclave's manifest")
        c.add_argument("--rootfs", help="software attester: the enclave's rootfs")
        c.add_argument("--sig", help="software attester: signature file (default MANIFEST.sig)")
        c.add_argument("--host-key", default=DEFAULT_HOST_KEY, metavar="PEM", help="the software-TEE host key")
        c.add_argument("--tsm-root", default=DEFAULT_TSM_ROOT, metavar="DIR", help="configfs-tsm report directory")
        c.add_argument("--privlevel", type=int, default=None, help="configfs-tsm privlevel (SNP VMPL)")
        c.add_argument("--pal", metavar="PATH", help="sgx attester: the enclave runtime PAL (v3)")
        c.add_argument("--pal-args", default="", help="sgx attester: pal_init arguments")
        c.add_argument("--aesm-socket", default=DEFAULT_AESM_SOCKET, metavar="PATH")
        if name == "server":
            c.add_argument("--count", type=int, default=0, help="stop after N connections (default: never)")
            c.add_argument("--reply", choices=("raw", "json"), default="raw")
        else:
            c.add_argument("--message", default=GREETING)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "client" and args.mutual and args.attester is None:
        raise UsageError("client: -m/--mutual needs -a/--attester")
    proves = args.command == "server" or args.mutual
    runtime = _runtime(args) if proves and _canonical(args.attester) == "sgx" and args.pal else None
    try:
        attester = _attester(args, runtime) if proves else None
        if args.command == "server":
            assert attester is not None
            return _server(args, attester)
        return _client(args, attester)
    finally:
        if runtime is not None:
            runtime.destroy()


def _server(args: argparse.Namespace, attester: Attester) -> int:
    verify_policy = _verify_policy(args) if args.mutual else None
    context = make_server_context(attester, verify_policy=verify_policy, key_algorithm=args.cert_algo)
    assert context.certificate is not None
    own = claimed(context.certificate.evidence)
    tee = context.certificate.evidence.kind.value
    listener = socket.create_server((args.ip, args.port), reuse_port=False)
    listener.settimeout(None)
    host, port = listener.getsockname()[:2]
    sys.stderr.write(f"listening on {host}:{port}\n")
    sys.stderr.flush()
    failures = served = 0
    with listener:
        while not args.count or served < args.count:
            served += 1
            try:
                conn = accept(listener, context)
            except InclavareError as exc:
                failures += 1
                sys.stderr.write(f"inclavare ratls server: {exc}\n")
                continue
            try:
                with conn:
                    conn.tls.settimeout(args.timeout)
                    message = conn.recv(MAX_MESSAGE)
                    if not message:
                        raise ConnectionAbortedError(0, "the peer closed the connection before sending a message")
                    signer = own.signer or bytes(len(own.measurement))
                    if args.reply == "raw":
                        conn.sendall(own.measurement + signer + message)
                    else:
                        doc = {"tee": tee, "measurement": own.measurement.hex(), "signer": signer.hex()}
                        conn.sendall(json.dumps({**doc, "message": message.decode("utf-8", "replace")}).encode())
            except OSError as exc:
                failures += 1
                sys.stderr.write(f"inclavare ratls server: connection: {exc.strerror or exc}\n")
                continue
            _print({"peer": _claims(conn.peer), "message": message.decode("utf-8", "replace")}, indent=None)
    return 1 if failures else 0


def _client(args: argparse.Namespace, attester: Attester | None) -> int:
    context = client_context(_verify_policy(args), attester=attester, key_algorithm=args.cert_algo)
    with connect((args.ip, args.port), context, timeout=args.timeout) as conn:
        conn.sendall(args.message.encode())
        reply = _read_all(conn)
    if not reply:
        raise RatlsError("ratls client: the server closed the connection without a reply (did it refuse our evidence?)")
    assert conn.peer is not None
    measurement = conn.peer.claims.measurement
    doc, echoed = decode_reply(reply, len(measurement))
    _print(
        {"verified": True, "peer": _claims(conn.peer), "reply": doc, "reply_matches_evidence": echoed == measurement}
    )
    return 0


def decode_reply(reply: bytes, size: int) -> tuple[dict[str, object], bytes]:
    """The server's reply (``raw`` or ``json``) and the measurement it echoes; RatlsError if it is neither.

    The server is verified, but its reply is still input: JSON that is not
    an object, or a measurement that is not hex (``0x`` allowed), is a
    one-line error, not a traceback.
    """
    if reply[:1] != b"{":
        doc: dict[str, object] = {
            "measurement": reply[:size].hex(),
            "signer": reply[size : 2 * size].hex(),
            "message": reply[2 * size :].decode("utf-8", "replace"),
        }
        return doc, reply[:size]
    try:
        parsed = json.loads(reply)
        text = parsed.get("measurement", "") if isinstance(parsed, dict) else None
        if not isinstance(text, str):
            raise ValueError("no measurement string")
        return parsed, from_hex(text)
    except (ValueError, RecursionError) as exc:
        raise RatlsError(f"ratls client: the server's JSON reply is malformed ({str(exc)[:80]})") from None


def _canonical(name: str | None) -> str | None:
    return ALIASES.get(name, name) if name is not None else None


def _attester(args: argparse.Namespace, runtime: EnclaveRuntime | None) -> Attester:
    name = args.attester
    if _canonical(name) == "software":
        if not args.manifest or not args.rootfs:
            raise UsageError("the software attester needs --manifest and --rootfs (a signed enclave)")
        return enclave_attester(args.manifest, args.sig, args.rootfs, args.host_key)
    options = AttesterOptions(
        tsm_root=args.tsm_root,
        privlevel=args.privlevel,
        runtime=runtime,
        aesm_socket=args.aesm_socket,
    )
    return create(name, options)


def _runtime(args: argparse.Namespace) -> EnclaveRuntime:
    from ...enclave.pal import PalRuntime

    runtime = PalRuntime(os.path.abspath(args.pal))
    runtime.init(args.pal_args, "info")
    return runtime


def _verify_policy(args: argparse.Namespace) -> VerifyPolicy:
    policy = Policy.load(args.policy) if args.policy else Policy.genuine_only()
    if args.allow_software:
        policy = dataclasses.replace(policy, allow_software=True)
    store = CollateralStore.from_files(args.collateral)
    if policy.allow_software and os.path.exists(args.host_key):
        store.add_host_key(HostKey.load_or_create(args.host_key).public_key)
    return VerifyPolicy(policy, store)


def _read_all(conn: AttestedSocket) -> bytes:
    chunks: list[bytes] = []
    while sum(len(c) for c in chunks) < MAX_MESSAGE * 2:
        try:
            chunk = conn.recv(65536)
        except OSError:
            break  # a reset after a refusal reads as "no reply"
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _claims(claims: VerifiedClaims | None) -> dict[str, object] | None:
    return None if claims is None else claims.to_json()


def _print(doc: dict[str, object], indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(doc, indent=indent) + "\n")
    sys.stdout.flush()
