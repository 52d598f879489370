"""`inclavare`: the tool for everything around rune (enclaves, evidence, KBS).

``inclavare <group> ...`` dispatches to ``inclavare.cli.tool.<group>``, a
module with ``main(argv) -> int`` that parses its own arguments with
:class:`._cli.Parser` (argparse is fine here: this is not rune's start-up
path). :func:`._cli.run` turns every error into one line on stderr and an
exit status, the traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import sys

from ._cli import run

GROUPS = {
    "enclave": "measure, sign, inspect, seal and unseal enclaves of the built-in runtimes",
    "evidence": "inspect and verify attestation evidence (SGX, TDX, SEV-SNP, Nitro, software)",
    "ratls": "attested TLS sample server and client",
    "kbs": "the key broker service",
    "kbs-client": "talk to a key broker: attest, get resources, administer",
    "image": "unpack (and decrypt) OCI images into rune bundles",
    "carrier": "make a plain bundle a signed enclave bundle (what containerd-shim-rune-v2 does at Create)",
    "signing-server": "serve enclave signatures: the original shim's API with TLS, authentication and audit",
    "node": "install or uninstall rune, containerd-shim-rune-v2 and inclavare on a Kubernetes node",
    "device-plugin": "the Kubernetes device plugin: enclave memory and SGX devices for pods, node labels",
    "epm": "the enclave pool manager: the carriers' bundle caches, served to root on a unix socket",
}


def _usage() -> str:
    lines = ["usage: inclavare [--debug] <group> [args...]", "", "groups:"]
    lines += [f"  {name:<14} {text}" for name, text in GROUPS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if argv else 2
    group, rest = argv[0], argv[1:]
    if group not in GROUPS:
        sys.stderr.write(f"inclavare: unknown group {group!r}\n" + _usage())
        return 2
    try:
        module = importlib.import_module(f"inclavare.cli.tool.{group.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name != f"inclavare.cli.tool.{group.replace('-', '_')}":
            raise
        sys.stderr.write(f"inclavare: {group}: not part of this build\n")
        return 2
    return run(f"inclavare {group}", module.main, rest, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
