"""``inclavare-keyprovider``: inclavare's ocicrypt key provider, run as a ``cmd`` provider.

ocicrypt (skopeo, containerd imgcrypt, CoCo image-rs) runs it with one
``KeyProviderKeyWrapProtocolInput`` JSON on stdin and reads the output JSON
from stdout (protocol: :mod:`inclavare.image.protocol`). Register it in the
file named by ``OCICRYPT_KEYPROVIDER_CONFIG``::

    {"key-providers": {"inclavare": {"cmd": {"path": "/usr/bin/inclavare-keyprovider",
                                             "args": ["--keys", "/etc/inclavare/keys"]}}}}

Key stores (docs/encrypted-images.md, "Key stores"):

- ``--kbs URL [--kbs URL]... --manifest M [--sig S] --rootfs R [--host-key K] [--cacert CA]``:
  inside the TEE. The provider attests to the KBS (RCAR, software evidence
  for the signed enclave, as ``inclavare kbs-client get-resource``) and the
  KBS releases the key only if its policies accept the enclave;
- ``--keys DIR``: a file key store (``DIR/<repository>/<type>/<tag>``): the
  owner's side (wrapping needs only the KEK), and tests; not attested.

Errors are one line on stderr and exit status 1, as for every ``inclavare``
tool (:mod:`inclavare.cli.tool._cli`; ``--debug`` adds the traceback); keys
and options are never printed there.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import UsageError
from .tool._cli import Parser, enclave_attester, run

if TYPE_CHECKING:
    from ..kbs.client import KbsClient

TOOL = "inclavare-keyprovider"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(TOOL, _main, argv, debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    p = Parser(prog=TOOL, description="ocicrypt key provider backed by KBS-held keys")
    p.add_argument("--keys", metavar="DIR", help="file key store: DIR/<repository>/<type>/<tag> (not attested)")
    p.add_argument("--kbs", action="append", default=[], metavar="URL", help="attest to this KBS (replicas: repeat)")
    p.add_argument("--manifest", help="the signed enclave manifest whose identity is attested")
    p.add_argument("--sig", help="its signature (default: MANIFEST.sig)")
    p.add_argument("--rootfs", help="the enclave's rootfs")
    p.add_argument("--host-key", metavar="PEM", help="software-TEE host key (default: the host's)")
    p.add_argument("--cacert", metavar="PEM", help="CA bundle for an https KBS")
    p.add_argument("--debug", action="store_true", help="a traceback with the error line")
    args = p.parse_args(argv)
    from ..image.provider import KeyProvider

    if args.kbs and args.keys:
        raise UsageError("--kbs and --keys exclude each other")
    if args.kbs:
        with _kbs_client(args) as client:
            from ..image.keystore import KbsKeyStore

            out = KeyProvider(KbsKeyStore(client)).handle(sys.stdin.buffer.read())
    else:
        from ..image.keystore import FileKeyStore

        out = KeyProvider(FileKeyStore(args.keys) if args.keys else None).handle(sys.stdin.buffer.read())
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def _kbs_client(args: argparse.Namespace) -> KbsClient:
    if not args.manifest or not args.rootfs:
        raise UsageError("--kbs needs --manifest and --rootfs (the enclave to attest)")
    from ..kbs.client import KbsClient

    attester = enclave_attester(args.manifest, args.sig, args.rootfs, args.host_key)
    return KbsClient(args.kbs, attester, verify=args.cacert or True)


if __name__ == "__main__":
    sys.exit(main())
