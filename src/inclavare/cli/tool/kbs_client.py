"""``inclavare kbs-client``: attest to a KBS and get resources; administer it with the admin key.

    inclavare kbs-client --url URL [--url URL2] [--cacert PEM] COMMAND ...

    enclave side (software evidence of a signed enclave, host key --host-key):
      attest         --manifest M --sig S --rootfs DIR [--host-key PEM] [--tee-key ec|rsa]
      get-resource   --path REPO/TYPE/TAG --manifest M --sig S --rootfs DIR [...] [-o OUT]

    admin side (--admin-key PEM, an Ed25519 key listed in the KBS config):
      set-resource --path P (--resource-file F | --value TEXT)      delete-resource --path P     list-resources
      set-resource-policy (--policy-file F | --builtin NAME) [--scope S]
      get-resource-policy      delete-resource-policy --scope S
      set-attestation-policy (--policy-file F | --builtin NAME) [--id ID]
      reference-value add NAME VALUE... [--expires T]     reference-value list [NAME]
      reference-value expire NAME [--value V] [--at T]    reference-value delete NAME [--value V]
      reference-value add-from-enclave MANIFEST --sig SIG --rootfs DIR [--expires T] [--by-signer]
      host-key add FILE | host-key list | host-key remove KEY_ID
      collateral add FILE... | collateral list [--kind K] | collateral remove ID
      audit [--since N] [--limit N]

``host-key add`` takes the PEM or the JSON ``inclavare enclave host-key``
prints; ``collateral add`` any file the collateral loader reads (PCS TCB
info, QE identity, CRLs, certificates, dcap-qvl bundles, host keys). Both
take effect on every replica without a restart (docs/kbs.md, "Collateral").
Times (T) are RFC 3339 (``2027-01-01T00:00:00Z``) or seconds since the epoch.
``--url`` and ``--admin-key`` default to ``$INCLAVARE_KBS_URL`` and
``$INCLAVARE_KBS_ADMIN_KEY``. Output is JSON (get-resource: the raw bytes,
to ``-o`` with mode 0600 or stdout). Errors: one line, exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ...errors import UsageError
from ._cli import Parser, enclave_attester, instant, read_file


def _enclave_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True)
    p.add_argument("--sig")
    p.add_argument("--rootfs", required=True)
    p.add_argument("--host-key", help="the software-TEE host key (default /var/lib/inclavare/software-tee-key.pem)")
    p.add_argument("--tee-key", choices=("ec", "rsa"), default="ec", help="ephemeral TEE key type")


def _policy_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--policy-file")
    which.add_argument("--builtin")


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare kbs-client", description="attest to a KBS, get resources, administer it")
    p.add_argument("--url", action="append", help="KBS base URL (repeat for replicas)")
    p.add_argument("--cacert", help="CA bundle (PEM) for an HTTPS KBS")
    p.add_argument("--admin-key", default=os.environ.get("INCLAVARE_KBS_ADMIN_KEY"))
    sub = p.add_subparsers(dest="cmd", required=True)
    _enclave_args(sub.add_parser("attest", help="run RCAR and print the attestation token"))
    get = sub.add_parser("get-resource", help="attest and get one resource")
    get.add_argument("--path", required=True)
    get.add_argument("-o", "--output")
    _enclave_args(get)
    s = sub.add_parser("set-resource", help="store a resource")
    s.add_argument("--path", required=True)
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--resource-file")
    src.add_argument("--value")
    sub.add_parser("delete-resource", help="delete a resource").add_argument("--path", required=True)
    sub.add_parser("list-resources", help="list resource paths in the admin's scopes")
    rp = sub.add_parser("set-resource-policy", help="set the resource policy of a scope")
    _policy_args(rp)
    rp.add_argument("--scope", default="*")
    sub.add_parser("get-resource-policy", help="print the resource policies by scope")
    sub.add_parser("delete-resource-policy", help="delete a scope's policy").add_argument("--scope", required=True)
    ap = sub.add_parser("set-attestation-policy", help="set an attestation policy")
    _policy_args(ap)
    ap.add_argument("--id", default="default")
    _reference_parser(sub.add_parser("reference-value", help="register, list, expire and delete reference values"))
    _collateral_parser(sub.add_parser("host-key", help="trust, list and remove software-TEE host keys"), True)
    _collateral_parser(sub.add_parser("collateral", help="add, list and remove verification collateral"), False)
    audit = sub.add_parser("audit", help="print audit records")
    audit.add_argument("--since", type=int, default=0)
    audit.add_argument("--limit", type=int, default=100)
    return p


def _reference_parser(rv: argparse.ArgumentParser) -> None:
    sub = rv.add_subparsers(dest="rv", required=True)
    add = sub.add_parser("add")
    add.add_argument("name")
    add.add_argument("values", nargs="+")
    add.add_argument("--expires")
    sub.add_parser("list").add_argument("name", nargs="?")
    exp = sub.add_parser("expire")
    exp.add_argument("name")
    exp.add_argument("--value")
    exp.add_argument("--at")
    dele = sub.add_parser("delete")
    dele.add_argument("name")
    dele.add_argument("--value")
    ent = sub.add_parser("add-from-enclave")
    ent.add_argument("manifest")
    ent.add_argument("--sig")
    ent.add_argument("--rootfs", required=True)
    ent.add_argument("--expires")
    ent.add_argument("--by-signer", action="store_true", help="register signer, product id and minimum SVN")


def _collateral_parser(p: argparse.ArgumentParser, host_keys: bool) -> None:
    sub = p.add_subparsers(dest="op", required=True)
    sub.add_parser("add").add_argument("files", nargs=1 if host_keys else "+", metavar="FILE")
    listing = sub.add_parser("list")
    if not host_keys:
        listing.add_argument("--kind", choices=("host-key", "tcb-info", "qe-identity", "crl", "certificate", "bundle"))
    sub.add_parser("remove").add_argument("id", metavar="KEY_ID" if host_keys else "ID")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    urls = args.url or ([os.environ["INCLAVARE_KBS_URL"]] if os.environ.get("INCLAVARE_KBS_URL") else [])
    if not urls:
        raise UsageError("--url is required (or set INCLAVARE_KBS_URL)")
    verify: bool | str = args.cacert or True
    if args.cmd in ("attest", "get-resource"):
        return _enclave_side(args, urls, verify)
    return _admin_side(args, urls[0], verify)


def _enclave_side(args: argparse.Namespace, urls: list[str], verify: bool | str) -> int:
    from ...kbs.client import KbsClient
    from ...kbs.jwe import TeeKey

    attester = enclave_attester(args.manifest, args.sig, args.rootfs, args.host_key)
    with KbsClient(
        urls, attester, tee_key=TeeKey.generate("RSA" if args.tee_key == "rsa" else "EC"), verify=verify
    ) as client:
        if args.cmd == "attest":
            print(json.dumps({"token": client.attest()}))
            return 0
        data = client.get_resource(args.path)
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


def _admin_side(args: argparse.Namespace, url: str, verify: bool | str) -> int:
    from ...kbs.admin_client import KbsAdmin, load_admin_key

    if not args.admin_key:
        raise UsageError(f"{args.cmd}: --admin-key is required (or set INCLAVARE_KBS_ADMIN_KEY)")
    with KbsAdmin(url, load_admin_key(args.admin_key), verify=verify) as admin:
        result = _ADMIN[args.cmd](admin, args)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _set_resource(admin: Any, args: argparse.Namespace) -> object:
    value = args.value.encode() if args.value is not None else read_file(args.resource_file)
    return {"path": admin.set_resource(args.path, value)}


def _policy_text(args: argparse.Namespace) -> dict[str, str]:
    if args.builtin:
        return {"builtin": args.builtin}
    return {"policy": read_file(args.policy_file).decode("utf-8", errors="replace")}


def _reference(admin: Any, args: argparse.Namespace) -> object:
    if args.rv == "add":
        return admin.add_reference_values(args.name, args.values, _time(args.expires, "--expires"))
    if args.rv == "list":
        return admin.reference_values(args.name)
    if args.rv == "expire":
        return {"expired": admin.expire_reference_values(args.name, args.value, _time(args.at, "--at"))}
    if args.rv == "delete":
        return {"deleted": admin.delete_reference_values(args.name, args.value)}
    sig = args.sig or args.manifest + ".sig"
    return admin.add_from_enclave(
        args.manifest, sig, args.rootfs, expires=_time(args.expires, "--expires"), by_signer=args.by_signer
    )


def _collateral(admin: Any, args: argparse.Namespace) -> object:
    kind = "host-key" if args.cmd == "host-key" else getattr(args, "kind", None)
    if args.op == "add":
        return [admin.add_collateral(read_file(f), kind) for f in args.files]
    if args.op == "list":
        return admin.collateral(kind)
    return {"deleted": admin.delete_collateral(args.id)}


_ADMIN = {
    "set-resource": _set_resource,
    "delete-resource": lambda a, args: {"deleted": a.delete_resource(args.path)},
    "list-resources": lambda a, args: a.list_resources(),
    "set-resource-policy": lambda a, args: {"scope": a.set_resource_policy(**_policy_text(args), scope=args.scope)},
    "get-resource-policy": lambda a, args: a.resource_policies(),
    "delete-resource-policy": lambda a, args: {"deleted": a.delete_resource_policy(args.scope)},
    "set-attestation-policy": lambda a, args: {
        "policy_id": a.set_attestation_policy(**_policy_text(args), policy_id=args.id)
    },
    "reference-value": _reference,
    "host-key": _collateral,
    "collateral": _collateral,
    "audit": lambda a, args: a.audit(args.since, args.limit),
}


def _time(text: str | None, option: str) -> float | None:
    """Seconds since the epoch, given as such or as an RFC 3339 time."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return instant(text, option).timestamp()
