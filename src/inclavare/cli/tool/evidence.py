"""``inclavare evidence``: inspect, verify and fetch collateral for attestation evidence.

    inclavare evidence inspect FILE
    inclavare evidence verify FILE [--collateral PATH]... [--cert PATH]... [--at RFC3339] [--policy FILE]
    inclavare evidence fetch FILE --cache DIR [--pcs URL] [--kds URL]

FILE may be binary, hex or base64 text, or PEM (RA-TLS certificates); ``-``
reads stdin. ``verify`` prints the verified claims as JSON and exits 0, or
fails with one line naming the check (the dispatcher prints errors).
Without ``--policy`` any genuine hardware evidence is accepted
(:meth:`~inclavare.attestation.policy.Policy.genuine_only`); software
evidence then needs a policy with ``allow_software = true``. ``--at``
defaults to now: this is the one place that reads the clock.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ._cli import Parser, instant, read_file

MAX_INPUT = 1 << 20  # evidence, certificates: nothing legitimate is near this


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare evidence", description="inspect and verify attestation evidence")
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print the decoded fields (nothing is verified)")
    ins.add_argument("file")
    ver = sub.add_parser("verify", help="verify everything and print the verified claims")
    ver.add_argument("file")
    ver.add_argument("--collateral", action="append", default=[], metavar="PATH", help="collateral file or cache dir")
    ver.add_argument("--cert", action="append", default=[], metavar="PATH", help="certificate(s): VCEK/VLEK, ASK...")
    ver.add_argument("--at", metavar="RFC3339", help="verification instant (default: now)")
    ver.add_argument("--policy", metavar="FILE", help="appraisal policy, JSON or TOML")
    fet = sub.add_parser("fetch", help="fetch the collateral FILE needs into a cache dir (network)")
    fet.add_argument("file")
    fet.add_argument("--cache", required=True, metavar="DIR")
    fet.add_argument("--pcs", default=None, metavar="URL", help="Intel PCS or PCCS base URL")
    fet.add_argument("--kds", default=None, metavar="URL", help="AMD KDS base URL")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ... import attestation as att
    from ...attestation.formats import unwrap_text

    data = unwrap_text(read_file(args.file, MAX_INPUT))
    if args.command == "inspect":
        _print(att.inspect(data))
        return 0
    if args.command == "fetch":
        from ...attestation.fetch import fetch_for

        for path in fetch_for(data, args.cache, pcs_url=args.pcs, kds_url=args.kds):
            print(path)
        return 0
    store = att.CollateralStore.from_files(args.collateral)
    for path in args.cert:
        _add_certificates(store, path)
    policy = att.Policy.load(args.policy) if args.policy else att.Policy.genuine_only()
    result = att.verify(data, at=_instant(args.at), collateral=store, policy=policy)
    _print({"verified": True, "policy": policy.name, **result.to_json()})
    return 0


def _add_certificates(store: object, path: str) -> None:
    from ...attestation import CollateralStore
    from ...attestation.errors import CollateralError
    from ...attestation.hazmat.certs import load_certificates

    assert isinstance(store, CollateralStore)
    for cert in load_certificates(read_file(path, MAX_INPUT), path, CollateralError):
        store.add_certificate(cert)


def _instant(text: str | None) -> datetime:
    return datetime.now(UTC) if text is None else instant(text, "--at")


def _print(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
