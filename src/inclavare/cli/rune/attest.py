"""rune attest [command options] <container-id>: evidence from an enclave container."""

from __future__ import annotations

import sys

from ...errors import UsageError
from ...runtime.context import RuntimeContext
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)
FLAGS = [
    Flag("reportFile, report-file", "str", "", "write the report to this file (on the host; default: stdout, hex)"),
    Flag("isRA, is-ra", help="remote attestation evidence instead of a local report"),
    Flag("quote-type", "str", "", "epidUnlinkable, epidLinkable or ecdsa (hardware SGX only)"),
    Flag("spid", "str", "", "EPID SPID (hardware SGX only)"),
    Flag("subscription-key, key", "str", "", "IAS subscription key (hardware SGX only)"),
    Flag("report-data", "str", "", "up to 64 bytes, hex, to bind into the report"),
    Flag("target-info", "str", "", "file with the 512-byte SGX TARGETINFO of the verifying enclave"),
]


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...attestation.hazmat.hextext import from_hex  # 0x-prefixed too, as dcap-qvl prints it
    from ...runtime.attest import attest

    try:
        report_data = from_hex(str(opts["report_data"]))
    except ValueError:
        raise UsageError("--report-data: not hex") from None
    target_info = b""
    if opts["target_info"]:
        with open(str(opts["target_info"]), "rb") as f:
            target_info = f.read()
    report = attest(ctx, args[0], report_data, target_info, bool(opts["isRA"]), str(opts["quote_type"]))
    if opts["reportFile"]:
        with open(str(opts["reportFile"]), "wb") as f:
            f.write(report)
    else:
        sys.stdout.write(report.hex() + "\n")
    return 0
