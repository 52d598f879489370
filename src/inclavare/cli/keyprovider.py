"""``inclavare-keyprovider``: inclavare's ocicrypt key provider, run as a ``cmd`` provider.

ocicrypt (skopeo, containerd imgcrypt, CoCo image-rs) runs it with one
``KeyProviderKeyWrapProtocolInput`` JSON on stdin and reads the output JSON
from stdout (protocol: :mod:`inclavare.image.protocol`). Register it in the
file named by ``OCICRYPT_KEYPROVIDER_CONFIG``::

    {"key-providers": {"inclavare": {"cmd": {"path": "/usr/bin/inclavare-keyprovider",
                                             "args": ["--keys", "/etc/inclavare/keys"]}}}}

``--keys DIR`` is a file key store (``DIR/<repository>/<type>/<tag>``): the
owner's side, and tests; it is not attested. Errors are one line on stderr
and exit status 1; keys and options are never printed there.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InclavareError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="inclavare-keyprovider", description="ocicrypt key provider backed by KBS-held keys")
    p.add_argument("--keys", metavar="DIR", help="file key store: DIR/<repository>/<type>/<tag> (not attested)")
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        from ..image.keystore import FileKeyStore
        from ..image.provider import KeyProvider

        provider = KeyProvider(FileKeyStore(args.keys) if args.keys else None)
        out = provider.handle(sys.stdin.buffer.read())
    except InclavareError as exc:
        sys.stderr.write(f"inclavare-keyprovider: {exc}\n")
        return exc.exit_code
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
