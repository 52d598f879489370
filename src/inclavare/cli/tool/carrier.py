"""``inclavare carrier``: run a carrier on a bundle, as containerd-shim-rune-v2 does at Create.

    inclavare carrier prepare [--id ID] [--config FILE] BUNDLE

If the bundle's container asks for a carrier (``RUNE_CARRIER`` in
process.env or the annotation ``enclave.carrier``), its enclave manifest is
generated, measured and signed, written into the rootfs, and config.json
gets the enclave settings; otherwise nothing changes. ``--config`` reads
another carrier configuration than /etc/inclavare-containers/config.toml.
What was done (and, with the node's own key, the mock-signing warning) is
logged on stderr; errors are one line, exit 1. See docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare carrier", description="turn a plain bundle into a signed enclave bundle")
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="run the bundle's carrier (nothing if it asks for none)")
    prep.add_argument("bundle", metavar="BUNDLE")
    prep.add_argument("--id", help="the container id (default: the bundle directory's name)")
    prep.add_argument(
        "--config", metavar="FILE", help="carrier configuration (default /etc/inclavare-containers/config.toml)"
    )
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="inclavare carrier: %(message)s")
    from ...carrier import prepare
    from ...carrier.flow import OPTION_CONFIG

    prepare(args.bundle, options={OPTION_CONFIG: args.config} if args.config else None, container_id=args.id)
    return 0
