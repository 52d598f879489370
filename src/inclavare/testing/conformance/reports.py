"""Checks of local_report: what probe() promises, report data, and bad sizes."""

from __future__ import annotations

from ...enclave.errors import EnclaveNotSupported
from ...errors import EnclaveError, PalError
from .harness import Kit, refused

TARGET_INFO = bytes((i * 7 + 3) % 256 for i in range(512))  # an SGX TARGETINFO's size, not all zero
DATA = bytes(range(1, 65))  # 64 bytes: SGX REPORTDATA


def local_report(kit: Kit) -> None:
    """can_report: a report for 64 bytes of report data (fewer are zero-padded); otherwise
    EnclaveNotSupported. A runtime that cannot bind report data (PAL v3) takes only zeros."""
    rt = kit.ready()
    if not rt.probe()["can_report"]:
        for data in (bytes(64), DATA):
            refused(rt.name, (EnclaveNotSupported,), rt.local_report, TARGET_INFO, data)
        return
    for data in (bytes(64), b"", bytes(32)):
        report = rt.local_report(TARGET_INFO, data)
        assert isinstance(report, bytes), f"local_report returned {type(report).__name__}"
        assert report, "local_report returned an empty report"
        kit.subject.check_report(report, TARGET_INFO, data)
    if kit.subject.binds_report_data:
        for data in (DATA, DATA[:5]):
            kit.subject.check_report(rt.local_report(TARGET_INFO, data), TARGET_INFO, data)
    else:
        refused(rt.name, (EnclaveNotSupported,), rt.local_report, TARGET_INFO, DATA)


def local_report_bad_sizes(kit: Kit) -> None:
    """More than 64 bytes of report data, or target info of a size no TEE uses, are bad input
    (refused, and not as "not supported", which would mean "check probe()")."""
    rt = kit.ready()
    if not rt.probe()["can_report"]:
        refused(rt.name, (EnclaveNotSupported,), rt.local_report, TARGET_INFO, bytes(65))
        return
    for target_info, data in ((TARGET_INFO, bytes(65)), (TARGET_INFO, DATA + b"x"), (bytes(511), b"")):
        exc = refused(rt.name, (EnclaveError, PalError), rt.local_report, target_info, data)
        assert not isinstance(exc, EnclaveNotSupported), f"bad input refused as not supported: {exc}"
