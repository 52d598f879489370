"""rune attest [command options] <container-id>: evidence from an enclave container."""

from __future__ import annotations

import sys

from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)


class Flags(_args.Flags):
    FLAGS = (
        Flag("reportFile, report-file", "str", "", "write the report to this file (on the host; default: stdout, hex)"),
        Flag("isRA, is-ra", help="remote attestation evidence instead of a local report"),
        Flag("quote-type", "str", "", "epidUnlinkable, epidLinkable or ecdsa (hardware SGX only)"),
        Flag("spid", "str", "", "EPID SPID (hardware SGX only)"),
        Flag("subscription-key, key", "str", "", "IAS subscription key (hardware SGX only)"),
        Flag("report-data", "str", "", "up to 64 bytes, hex, to bind into the report"),
        Flag("target-info", "str", "", "file with the 512-byte SGX TARGETINFO of the verifying enclave"),
    )
    __slots__ = ("isRA", "quote_type", "reportFile", "report_data", "spid", "subscription_key", "target_info")
    reportFile: str  # the dest of runc's flag names (--reportFile, --isRA)
    isRA: bool
    quote_type: str
    spid: str
    subscription_key: str
    report_data: str
    target_info: str


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...attestation.hazmat.hextext import from_hex  # 0x-prefixed too, as dcap-qvl prints it
    from ...runtime.attest import attest

    try:
        report_data = from_hex(opts.report_data)
    except ValueError:
        raise UsageError("--report-data: not hex") from None
    target_info = b""
    if opts.target_info:
        with open(opts.target_info, "rb") as f:
            target_info = f.read()
    report = attest(ctx, args[0], report_data, target_info, opts.isRA, opts.quote_type)
    if opts.reportFile:
        with open(opts.reportFile, "wb") as f:
            f.write(report)
    else:
        sys.stdout.write(report.hex() + "\n")
    return 0
