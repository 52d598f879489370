"""``inclavare ratls``: the attested TLS sample server and client (rats-tls's samples; docs/ratls.md).

    inclavare ratls server [-a ATTESTER] [-v VERIFIER] [-i IP] [-p PORT] [-m] [--reply echo|identity|json]
                           [--policy FILE] [--allow-software] [--collateral PATH]... [--count N] [attester options]
    inclavare ratls client [-a ATTESTER] [-v VERIFIER] [-i IP] [-p PORT] [-m] [--reply echo|identity|json]
                           [--policy FILE] [--allow-software] [--collateral PATH]... [--message TEXT]

The server proves itself with ``-a`` (software, sgx, tdx, sev-snp; rats-tls's
sgx_ecdsa, tdx_ecdsa, sev_snp too), receives one message per connection and
answers with the rats-tls sample protocol (:mod:`inclavare.attestation.ratls.sample`):
``echo`` (rats-tls host and SGX builds, the default), ``identity``
(MRENCLAVE || MRSIGNER || message, its Occlum build) or ``json``. It prints
one JSON line per connection on stdout and ``listening on IP:PORT`` on
stderr (``-p 0`` picks a free port). The client sends the message (rats-tls's
greeting by default), checks the reply as rats-tls's client does, and
prints the verified claims and the reply as JSON. ``-m`` makes both sides
prove themselves.

Appraisal: ``--policy FILE`` (:mod:`inclavare.attestation.policy`), else any
genuine hardware evidence; ``-v TEE`` (or a rats-tls verifier name) accepts
that TEE's evidence only; ``--allow-software`` accepts software evidence from
host keys in ``--collateral`` and, if its file exists, this host's own key
(``--host-key``).

Development without attestation, as rats-tls's nullattester/nullverifier,
only when named: ``-a null`` sends a certificate without evidence, ``-v null``
accepts any peer unappraised. Every line either side then writes says
UNATTESTED, and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
from typing import TYPE_CHECKING

from ...attestation import CollateralStore, Policy, Tee, VerifiedClaims
from ...attestation.attesters import ALIASES, REGISTRY, Attester, AttesterOptions, create
from ...attestation.attesters.interface import DEFAULT_AESM_SOCKET, DEFAULT_TSM_ROOT
from ...attestation.attesters.peek import Claimed, claimed
from ...attestation.ratls import (
    UNATTESTED,
    AttestedSocket,
    NullAttester,
    NullVerifier,
    RatlsError,
    VerifyPolicy,
    accept,
    client_context,
    connect,
    sample,
)
from ...attestation.ratls import server_context as make_server_context
from ...attestation.ratls.certificate import KEY_ALGORITHMS
from ...attestation.ratls.sample import decode_reply
from ...enclave.identity import DEFAULT_HOST_KEY, HostKey
from ...errors import InclavareError, UsageError
from ._cli import Parser, enclave_attester

if TYPE_CHECKING:
    from ...enclave.interface import EnclaveRuntime

__all__ = ["decode_reply", "main"]

NULL_NAMES = ("null", "nullattester", "nullverifier")
VERIFIERS = {  # -v: rats-tls verifier instance names and ours, as the one TEE whose evidence is accepted
    "sgx": Tee.SGX, "sgx_ecdsa": Tee.SGX, "sgx_ecdsa_qve": Tee.SGX, "tdx": Tee.TDX, "tdx_ecdsa": Tee.TDX,
    "sev-snp": Tee.SEV_SNP, "sev_snp": Tee.SEV_SNP, "software": Tee.SOFTWARE,
}  # fmt: skip
MAX_MESSAGE = 64 << 10
Appraiser = VerifyPolicy | NullVerifier


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare ratls", description="attested TLS sample server and client")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("server", "client"):
        c = sub.add_parser(name, help=f"the rats-tls sample {name}")
        c.add_argument(
            "-a",
            "--attester",
            default="software" if name == "server" else None,
            metavar="NAME",
            choices=[*REGISTRY, *ALIASES, "null", "nullattester"],
            help="how this side proves itself",
        )
        c.add_argument("-v", "--verifier", default=None, metavar="NAME", choices=[*VERIFIERS, "null", "nullverifier"],
                       help="accept only this TEE's evidence, or (null) any peer unappraised")  # fmt: skip
        c.add_argument("-i", "--ip", default="127.0.0.1")
        c.add_argument("-p", "--port", type=int, default=1234)
        c.add_argument("-m", "--mutual", action="store_true", help="both sides prove themselves")
        c.add_argument("--reply", choices=sample.MODES, default="echo", help="the sample protocol's reply")
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
        else:
            c.add_argument("--message", default=sample.GREETING.decode())
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    _check(args)
    mark = _unattested(args)
    proves = args.command == "server" or args.mutual
    runtime = _runtime(args) if proves and _canonical(args.attester) == "sgx" and args.pal else None
    try:
        attester = _attester(args, runtime) if proves else None
        appraiser = _appraiser(args) if args.command == "client" or args.mutual else None
        if args.command == "server":
            assert attester is not None
            return _server(args, attester, appraiser, mark)
        assert appraiser is not None
        return _client(args, attester, appraiser, mark)
    except InclavareError as exc:
        if not mark:
            raise
        _say(mark, f"inclavare ratls: {exc}")  # the failure line is marked too
        return exc.exit_code
    finally:
        if runtime is not None:
            runtime.destroy()


def _check(args: argparse.Namespace) -> None:
    server = args.command == "server"
    if not server and args.mutual and args.attester is None:
        raise UsageError("client: -m/--mutual needs -a/--attester")
    if server and args.verifier is not None and not args.mutual:
        raise UsageError("server: -v/--verifier needs -m/--mutual (a server appraises clients only in mutual mode)")
    if server and args.attester in NULL_NAMES and args.reply != "echo":
        raise UsageError(f"server: --reply {args.reply} states this side's identity; -a null has none")
    if args.verifier in NULL_NAMES and (args.policy or args.allow_software or args.collateral):
        raise UsageError(f"{args.command}: -v null appraises nothing: --policy, --allow-software, --collateral")


def _unattested(args: argparse.Namespace) -> str:
    """The marker for every line this run writes, or "" when both directions are attested."""
    why = []
    if args.attester in NULL_NAMES and (args.command == "server" or args.mutual):
        why.append("this side sends no evidence: -a null")
    if args.verifier in NULL_NAMES and (args.command == "client" or args.mutual):
        why.append("the peer is not appraised: -v null")
    return f"{UNATTESTED} ({'; '.join(why)})" if why else ""


def _server(args: argparse.Namespace, attester: Attester | NullAttester, appraiser: Appraiser | None, mark: str) -> int:
    context = make_server_context(attester, verify_policy=appraiser, key_algorithm=args.cert_algo)
    assert context.certificate is not None
    evidence = context.certificate.evidence
    own = claimed(evidence) if evidence is not None else Claimed(b"", b"", b"")
    tee = evidence.kind.value if evidence is not None else "none"
    listener = socket.create_server((args.ip, args.port), reuse_port=False)
    listener.settimeout(None)
    host, port = listener.getsockname()[:2]
    _say(mark, f"listening on {host}:{port}")
    failures = served = 0
    with listener:
        while not args.count or served < args.count:
            served += 1
            try:
                conn = accept(listener, context)
            except InclavareError as exc:
                failures += 1
                _say(mark, f"inclavare ratls server: {exc}")
                continue
            try:
                with conn:
                    conn.tls.settimeout(args.timeout)
                    message = conn.recv(MAX_MESSAGE)
                    if not message:
                        raise ConnectionAbortedError(0, "the peer closed the connection before sending a message")
                    conn.sendall(sample.reply(args.reply, message, own.measurement, own.signer, tee))
            except OSError as exc:
                failures += 1
                _say(mark, f"inclavare ratls server: connection: {exc.strerror or exc}")
                continue
            _print(_with_mark({**_peer(conn), "message": message.decode("utf-8", "replace")}, mark), indent=None)
    return 1 if failures else 0


def _client(args: argparse.Namespace, attester: Attester | NullAttester | None, appraiser: Appraiser, mark: str) -> int:
    context = client_context(appraiser, attester=attester, key_algorithm=args.cert_algo)
    message = args.message.encode()
    with connect((args.ip, args.port), context, timeout=args.timeout) as conn:
        conn.sendall(message)
        received = _read_all(conn)
    if not received:
        raise RatlsError("ratls client: the server closed the connection without a reply (did it refuse our evidence?)")
    size = len(conn.peer.claims.measurement) if conn.peer is not None else sample.SGX_PREFIX // 2
    doc, stated = sample.check_reply(args.reply, message, received, size)
    out: dict[str, object] = {"verified": conn.peer is not None, **_peer(conn), "reply": doc}
    if stated is not None:
        out["reply_matches_evidence"] = None if conn.peer is None else stated == conn.peer.claims.measurement
    _print(_with_mark(out, mark))
    return 0


def _canonical(name: str | None) -> str | None:
    return ALIASES.get(name, name) if name is not None else None


def _attester(args: argparse.Namespace, runtime: EnclaveRuntime | None) -> Attester | NullAttester:
    name = args.attester
    if name in NULL_NAMES:
        return NullAttester()
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


def _appraiser(args: argparse.Namespace) -> Appraiser:
    if args.verifier in NULL_NAMES:
        return NullVerifier()
    policy = Policy.load(args.policy) if args.policy else Policy.genuine_only()
    if args.allow_software:
        policy = dataclasses.replace(policy, allow_software=True)
    if args.verifier is not None:
        tee = VERIFIERS[args.verifier]
        if policy.tees and tee not in policy.tees:
            raise UsageError(f"-v {args.verifier}: the policy does not accept {tee.value} evidence")
        policy = dataclasses.replace(policy, tees=frozenset({tee}))
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


def _peer(conn: AttestedSocket) -> dict[str, object]:
    claims: VerifiedClaims | None = conn.peer
    return {
        "peer": None if claims is None else claims.to_json(),
        "custom_claims": {name: value.hex() for name, value in conn.custom_claims.items()},
    }


def _with_mark(doc: dict[str, object], mark: str) -> dict[str, object]:
    return {**doc, "unattested": mark} if mark else doc


def _say(mark: str, line: str) -> None:
    sys.stderr.write(f"{mark}: {line}\n" if mark else f"{line}\n")
    sys.stderr.flush()


def _print(doc: dict[str, object], indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(doc, indent=indent) + "\n")
    sys.stdout.flush()
