"""`inclavare enclave`: measure, sign, inspect, verify, seal and unseal software enclaves.

    inclavare enclave measure MANIFEST --rootfs DIR
    inclavare enclave expand  TEMPLATE --rootfs DIR [-o MANIFEST]
    inclavare enclave sign    MANIFEST --rootfs DIR (--key PEM | --signing-server URL) [--signer HEX] [-o SIG]
    inclavare enclave inspect SIG
    inclavare enclave verify  MANIFEST --rootfs DIR [--sig SIG] [--signer HEX]
    inclavare enclave seal    MANIFEST --rootfs DIR [--sig SIG] --policy mrenclave|mrsigner -i IN -o OUT
    inclavare enclave unseal  MANIFEST --rootfs DIR [--sig SIG] [--policy ...] -i IN -o OUT
    inclavare enclave host-key [--path PEM] [--format json|pem]

``--sig`` defaults to ``MANIFEST.sig``. seal/unseal first verify the signed
manifest (the identity comes from the signature, never from flags) and take
``--host-secret PATH`` (default /var/lib/inclavare/host-secret) and ``--aad``.
``host-key`` prints the public key as JSON with its path and key id (the
default, as before) or, with ``--format pem``, the bare PEM; a broker's
``attestation.collateral``, ``evidence verify --collateral`` and
``kbs-client host-key add`` take either.
Exit 0 on success, 1 with one line on stderr otherwise (:mod:`._cli`).
"""

from __future__ import annotations

import argparse
import json
import sys

from ...enclave.identity import (
    EnclaveIdentity,
    HostKey,
    HostSecret,
    IdentityError,
    KeySigner,
    Policy,
    ServerSigner,
    SignatureError,
    dump_manifest,
    expand_trusted_files,
    inspect_signature,
    load_manifest,
    measure,
    seal,
    sign_manifest,
    unseal,
    verify_signature,
    write_signature,
)
from ...enclave.identity._files import write_atomic
from ...enclave.identity.identity import signer_id
from ...errors import UsageError
from ._cli import Parser, read_file

_HELP = {
    "measure": "print the measurement (MRENCLAVE analogue) of a manifest and its rootfs",
    "expand": "pin the sha256 of every trusted file and the wasm module (a template in, a manifest out)",
    "sign": "sign an expanded manifest (writes MANIFEST.sig)",
    "verify": "check signature, files and manifest; print the enclave identity",
    "seal": "seal a file to the identity of a signed enclave",
    "unseal": "unseal a file sealed by `seal`",
    "inspect": "print the identity in a signature file",
    "host-key": "print the host's software-TEE public key (created on first use)",
}


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare enclave", description="software enclave identity: measure, sign, seal")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("measure", "expand", "sign", "verify", "seal", "unseal"):
        c = sub.add_parser(name, help=_HELP[name])
        c.add_argument("manifest")
        c.add_argument("--rootfs", required=True)
        if name in ("verify", "seal", "unseal"):
            c.add_argument("--sig")
        if name in ("sign", "verify"):
            c.add_argument("--signer", help="expected MRSIGNER, hex")
        if name in ("seal", "unseal"):
            c.add_argument("--policy", choices=("mrenclave", "mrsigner"), required=name == "seal")
            c.add_argument("--host-secret", default=None)
            c.add_argument("--aad", default="")
            c.add_argument("-i", "--input", required=True)
        if name != "measure":
            c.add_argument("-o", "--output", required=name in ("seal", "unseal"))
        if name == "sign":
            key = c.add_mutually_exclusive_group(required=True)
            key.add_argument("--key")
            key.add_argument("--signing-server")
    sub.add_parser("inspect", help=_HELP["inspect"]).add_argument("sig")
    host_key = sub.add_parser("host-key", help=_HELP["host-key"])
    host_key.add_argument("--path", default=None)
    host_key.add_argument("--format", choices=("json", "pem"), default="json")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(_COMMANDS[args.cmd](args) or 0)


def _measure(args: argparse.Namespace) -> None:
    print(measure(load_manifest(args.manifest), args.rootfs).hex())


def _expand(args: argparse.Namespace) -> None:
    text = dump_manifest(expand_trusted_files(load_manifest(args.manifest), args.rootfs))
    if args.output:
        _write(args.output, text.encode(), 0o644)
    else:
        sys.stdout.write(text)


def _sign(args: argparse.Namespace) -> None:
    expected = _signer(args.signer)
    signer = KeySigner.from_pem_file(args.key) if args.key else ServerSigner(args.signing_server, expected)
    if expected is not None and signer_id(signer.public_key_der()) != expected:
        raise SignatureError(args.key, "", "this key is not the expected --signer")
    sig = sign_manifest(args.manifest, args.rootfs, signer)
    output = args.output or args.manifest + ".sig"
    try:
        write_signature(sig, output)
    except OSError as exc:
        raise SignatureError(output, "", f"cannot write: {exc.strerror}") from None
    identity, algorithm = inspect_signature(output)
    _print_json({**identity.to_json(), "algorithm": algorithm, "signature": output})


def _inspect(args: argparse.Namespace) -> None:
    identity, algorithm = inspect_signature(args.sig)
    _print_json({**identity.to_json(), "algorithm": algorithm})


def _verify(args: argparse.Namespace) -> None:
    _print_json(_identity(args, _signer(args.signer)).to_json())


def _seal(args: argparse.Namespace) -> None:
    identity = _identity(args)
    secret = HostSecret.load_or_create(args.host_secret) if args.host_secret else HostSecret.load_or_create()
    blob = seal(identity, Policy(args.policy), read_file(args.input), args.aad.encode(), secret=secret)
    _write(args.output, blob, 0o600)


def _unseal(args: argparse.Namespace) -> None:
    identity = _identity(args)
    secret = HostSecret.load_or_create(args.host_secret) if args.host_secret else HostSecret.load_or_create()
    policy = Policy(args.policy) if args.policy else None
    plain = unseal(identity, read_file(args.input), args.aad.encode(), policy=policy, secret=secret, source=args.input)
    _write(args.output, plain, 0o600)  # plaintext of sealed data: owner-only


def _host_key(args: argparse.Namespace) -> None:
    key = HostKey.load_or_create(args.path) if args.path else HostKey.load_or_create()
    if args.format == "pem":
        sys.stdout.write(key.public_pem.decode())
        return
    _print_json({"path": key.path, "key_id": key.key_id.hex(), "public_key": key.public_pem.decode()})


def _identity(args: argparse.Namespace, signer: bytes | None = None) -> EnclaveIdentity:
    return verify_signature(args.manifest, args.sig or args.manifest + ".sig", args.rootfs, expected_signer=signer)


def _signer(text: str | None) -> bytes | None:
    if text is None:
        return None
    from ...attestation.hazmat.hextext import from_hex  # 0x-prefixed too, as dcap-qvl prints it

    try:
        value = from_hex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise UsageError("--signer: must be 64 hex digits (a MRSIGNER)")
    return value


def _write(path: str, data: bytes, mode: int) -> None:
    try:
        write_atomic(path, data, mode)
    except OSError as exc:
        raise IdentityError(f"{path}: cannot write: {exc.strerror}") from None


def _print_json(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


_COMMANDS = {
    "measure": _measure,
    "expand": _expand,
    "sign": _sign,
    "inspect": _inspect,
    "verify": _verify,
    "seal": _seal,
    "unseal": _unseal,
    "host-key": _host_key,
}
