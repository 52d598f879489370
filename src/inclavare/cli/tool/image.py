"""``inclavare image``: unpack OCI images into rune bundles; encrypt them for confidential containers.

    inclavare image unpack [--keyprovider-config FILE] [--decryption-key provider:NAME[:PARAMS]]...
                           [--rootless] [--max-size BYTES] [--enclave-settings-from-image]
                           [--keep-privileged-xattrs] LAYOUT[:TAG] BUNDLE
    inclavare image encrypt [--keyprovider-config FILE] --encryption-key provider:NAME:PARAMS | jwe:PUBKEY ...
                            SRC_LAYOUT[:TAG] DST_LAYOUT:TAG

Encrypted layers are decrypted only with keys that key providers return
(ocicrypt's protocol; for inclavare's provider, the KBS releases the key
after attestation). ``--keyprovider-config`` defaults to
``$OCICRYPT_KEYPROVIDER_CONFIG``, as for skopeo. Key options use skopeo's
spelling. The image's enclave settings (``enclave.*`` labels, ``ENCLAVE_*``
variables) and its ``trusted.*``/``security.*`` xattrs are left out, each
reported as a warning, unless asked for. See docs/encrypted-images.md.
"""

from __future__ import annotations

import argparse
import sys

from ...errors import UsageError
from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="inclavare image", description="unpack and encrypt OCI images")
    sub = p.add_subparsers(dest="command", required=True)
    un = sub.add_parser("unpack", help="unpack (and decrypt) an OCI image layout into a rune bundle")
    un.add_argument("image", metavar="LAYOUT[:TAG]")
    un.add_argument("bundle", metavar="BUNDLE")
    un.add_argument("--keyprovider-config", metavar="FILE", help="ocicrypt key provider config")
    un.add_argument("--decryption-key", action="append", default=[], metavar="provider:NAME[:PARAMS]")
    un.add_argument("--rootless", action="store_true", default=None, help="no chown, no device nodes, rootless config")
    un.add_argument("--max-size", type=int, default=None, metavar="BYTES",
                    help="refuse layers that decompress to more than this in total (default 64 GiB)")  # fmt: skip
    un.add_argument("--enclave-settings-from-image", action="store_true",
                    help="copy the image's enclave.* labels and ENCLAVE_* variables into config.json "
                         "(rune loads the enclave runtime they name: trust the image first)")  # fmt: skip
    un.add_argument("--keep-privileged-xattrs", action="store_true",
                    help="also apply the layers' trusted.* and security.* xattrs (e.g. security.selinux); "
                         "default: user.*, security.capability, security.ima, POSIX ACLs")  # fmt: skip
    en = sub.add_parser("encrypt", help="encrypt every layer (ocicrypt format)")
    en.add_argument("source", metavar="SRC_LAYOUT[:TAG]")
    en.add_argument("dest", metavar="DST_LAYOUT:TAG")
    en.add_argument("--keyprovider-config", metavar="FILE", help="ocicrypt key provider config")
    en.add_argument("--encryption-key", action="append", default=[], metavar="provider:NAME:PARAMS|jwe:PUBKEY")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ...image import layout, providers

    if args.command == "unpack":
        from ...image.unpack import unpack

        params, jwe = providers.parse_key_options(args.decryption_key)
        if jwe:
            raise UsageError("unpack: --decryption-key takes provider:NAME[:PARAMS] only")
        configured = providers.load_config(args.keyprovider_config)
        unwrapper = providers.Unwrapper(configured, params) if configured else None
        path, ref = layout.split_ref(args.image)
        limit = {} if args.max_size is None else {"max_bytes": args.max_size}
        result = unpack(path, ref, args.bundle, unwrapper, args.rootless, **limit,
                        enclave_settings=args.enclave_settings_from_image,
                        privileged_xattrs=args.keep_privileged_xattrs)  # fmt: skip
        for line in result.report.skipped:
            sys.stderr.write(f"inclavare image: warning: {line}\n")
        sys.stdout.write(f"{result.manifest}: {result.layers} layers ({result.decrypted} decrypted) -> {args.bundle}\n")
        return 0
    from ...image.encrypt import encrypt

    params, jwe_files = providers.parse_key_options(args.encryption_key)
    pems = []
    for name in jwe_files:
        try:
            with open(name, "rb") as f:
                pems.append(f.read(1 << 16))
        except OSError as exc:
            raise UsageError(f"encrypt: {name}: {exc.strerror}") from None
    src, src_ref = layout.split_ref(args.source)
    dst, dst_ref = layout.split_ref(args.dest)
    if dst_ref is None:
        raise UsageError("encrypt: the destination needs a tag (DST_LAYOUT:TAG)")
    desc = encrypt(src, src_ref, dst, dst_ref, providers.load_config(args.keyprovider_config), params, pems)
    sys.stdout.write(f"{desc.digest}\n")
    return 0
