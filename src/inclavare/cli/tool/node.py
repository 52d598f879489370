"""``inclavare node``: put rune and containerd-shim-rune-v2 on a Kubernetes node, or take them off.

    inclavare node install [--prefix /usr/local] [--containerd-config /etc/containerd/config.toml] [--source DIR|WHEEL]
    inclavare node uninstall [--prefix /usr/local] [--containerd-config FILE]

``install`` makes a virtual environment under PREFIX/lib/inclavare with the
project pip-installed into it (from ``--source``, default the checkout this
command runs from), writes the launchers ``rune``, ``containerd-shim-rune-v2``
and ``inclavare`` into PREFIX/bin, adds the ``rune`` runtime to containerd's
configuration without touching anything else in it, and prints the
Kubernetes ``RuntimeClass`` to apply. ``uninstall`` removes exactly what
``install`` recorded. Restart containerd after either. See
src/inclavare/carrier/node.py and docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import sys

from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare node", description="install or uninstall rune and its containerd shim on this node")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("install", "install rune, the shim and inclavare; add containerd's rune runtime"),
                       ("uninstall", "remove what install added")):  # fmt: skip
        s = sub.add_parser(name, help=text)
        s.add_argument("--prefix", default="/usr/local", help="default /usr/local (launchers in PREFIX/bin)")
        s.add_argument("--containerd-config", default=None, metavar="FILE",
                       help="containerd's configuration (default /etc/containerd/config.toml; "
                            "uninstall: the one install edited)")  # fmt: skip
        if name == "install":
            s.add_argument("--source", metavar="DIR|WHEEL", help="what to pip install (default: this checkout)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ...carrier import node

    if args.command == "uninstall":
        for line in node.uninstall(args.prefix, args.containerd_config):
            sys.stdout.write(f"{line}\n")
        sys.stdout.write("restart containerd to drop the rune runtime\n")
        return 0
    config = args.containerd_config or "/etc/containerd/config.toml"
    for line in node.install(args.prefix, config, args.source):
        sys.stdout.write(f"{line}\n")
    sys.stdout.write(
        f"restart containerd, then apply this RuntimeClass (kubectl apply -f -):\n---\n{node.RUNTIME_CLASS}"
    )
    return 0
