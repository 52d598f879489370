"""The SGX attester: aesmd framing (hand-encoded protobuf), a fake aesmd, real fixture PALs."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from inclavare.attestation import EvidenceKind, detect
from inclavare.attestation.attesters import (
    AttesterError,
    AttesterOptions,
    NotSupportedOnPlatform,
    SgxAttester,
    create,
)
from inclavare.attestation.attesters.aesm import AesmClient, decode, varint
from inclavare.attestation.attesters.peek import claimed
from inclavare.enclave.pal import PalRuntime

from .fake_aesmd import QUOTE, TARGET_INFO, FakeAesmd

RD = bytes(range(100, 164))
# sgx_ql_att_key_id_t of Intel's ECDSA-P256 QE3, written out by hand (sgx_quote_3.h field order):
KEY_ID = (
    b"\0\0" + b"\0\0" + b"\x20\0"
    + bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff") + bytes(16)
    + b"\x01\0\0\0" + bytes(16 + 64 + 16) + b"\x02\0\0\0"
).ljust(256, b"\0")  # fmt: skip


class Enclave:
    """An enclave runtime that reports like EREPORT: REPORTDATA at body offset 320."""

    def __init__(self, ignore_report_data: bool = False) -> None:
        self.ignore = ignore_report_data
        self.target_infos: list[bytes] = []

    def local_report(self, target_info: bytes, report_data: bytes) -> bytes:
        self.target_infos.append(target_info)
        body = bytes(64) + b"E" * 32 + bytes(32) + b"S" * 32 + bytes(160) + (bytes(64) if self.ignore else report_data)
        return body + b"K" * 32 + b"M" * 16


@pytest.fixture
def aesmd(tmp_path):
    servers: list[FakeAesmd] = []

    def start(**kw: object) -> FakeAesmd:
        server = FakeAesmd(tmp_path / f"aesm{len(servers)}.socket", **kw)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_request_bytes_are_intels_protobuf(aesmd) -> None:
    server = aesmd()
    assert AesmClient(server.path).qe_target_info() == TARGET_INFO
    inner = b"\x0a\x80\x02" + KEY_ID + b"\x18\x01" + b"\x20\x20" + b"\x48\x98\x75"  # fields 1, 3, 4, 9=15000
    assert server.requests == [b"\x7a\x8a\x02" + inner]  # field 15, length 266


def test_quote_for_an_enclave_report(aesmd) -> None:
    server = aesmd()
    enclave = Enclave()
    attester = create("sgx_ecdsa", AttesterOptions(runtime=enclave, aesm_socket=server.path))
    evidence = attester.collect_evidence(RD)
    assert evidence.kind == EvidenceKind.SGX_QUOTE == detect(evidence.data)
    assert len(evidence.data) == len(QUOTE)  # the QE's zero padding is trimmed
    peek = claimed(evidence)
    assert (peek.measurement, peek.signer, peek.report_data) == (b"E" * 32, b"S" * 32, RD)
    assert enclave.target_infos == [TARGET_INFO]
    get_quote = decode(decode(server.requests[2])[17][0])  # type: ignore[arg-type]
    assert get_quote[1] == [enclave.local_report(TARGET_INFO, RD)]
    assert get_quote[2] == [KEY_ID]
    assert get_quote[4] == [len(QUOTE) + 300]
    assert get_quote[9] == [15000]


def test_aesmd_errors_and_bad_reports(aesmd) -> None:
    failing = aesmd(error={15: 0x2A})
    with pytest.raises(AttesterError, match=r"^sgx attester: aesmd: InitQuoteEx failed with aesm_error_t 0x2a$"):
        SgxAttester(Enclave(), AesmClient(failing.path)).collect_evidence(RD)
    server = aesmd()
    with pytest.raises(AttesterError, match="the enclave's REPORT does not carry the requested report data"):
        SgxAttester(Enclave(ignore_report_data=True), AesmClient(server.path)).collect_evidence(RD)
    with pytest.raises(AttesterError, match="report data must be 64 bytes, not 32"):
        SgxAttester(Enclave(), AesmClient(server.path)).collect_evidence(bytes(32))
    with pytest.raises(AttesterError, match="needs an SGX enclave runtime"):
        create("sgx")


def test_real_pal_cannot_bind_report_data(aesmd, pal) -> None:
    server = aesmd()
    runtime = PalRuntime(pal("v3"))
    runtime.init("", "info")
    try:
        with pytest.raises(AttesterError) as info:
            SgxAttester(runtime, AesmClient(server.path)).collect_evidence(RD)
        assert str(info.value) == (
            "sgx attester: local report: enclave runtime liberpal-v3.so: "
            "pal_get_local_report cannot bind report data (it is always zero)"
        )
        # With all-zero report data (what the PAL API can express) the PAL's REPORT is quoted.
        report = runtime.local_report(TARGET_INFO, b"")
        evidence = SgxAttester(runtime, AesmClient(server.path)).collect_evidence(bytes(64))
        assert evidence.data[48:432] == report[:384]
        assert claimed(evidence).report_data == bytes(64)
    finally:
        runtime.destroy()


def test_no_aesmd_is_not_supported_on_this_platform(tmp_path) -> None:
    missing = str(tmp_path / "aesm.socket")
    with pytest.raises(NotSupportedOnPlatform) as info:
        create("sgx", AttesterOptions(runtime=Enclave(), aesm_socket=missing)).collect_evidence(RD)
    assert str(info.value) == f"sgx attester: not supported on this platform: no aesmd socket at {missing}"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(missing)  # a socket file nobody listens on
    dead.close()
    with pytest.raises(NotSupportedOnPlatform, match="aesmd is not listening at"):
        AesmClient(missing).qe_target_info()
    os.unlink(missing)


def test_truncated_and_malformed_answers(tmp_path) -> None:
    path = str(tmp_path / "aesm.socket")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    answers = [struct.pack("<I", 10) + b"abc", struct.pack("<I", 2) + b"\x7a\x05", struct.pack("<I", 1 << 21)]
    import threading

    def serve() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.sendall(answer)
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = AesmClient(path)
    with pytest.raises(AttesterError, match="InitQuoteEx: connection closed after 3 of 10 bytes"):
        client.qe_target_info()
    with pytest.raises(AttesterError, match=r"malformed response \(field 15 runs past the end\)"):
        client.qe_target_info()
    with pytest.raises(AttesterError, match="response of 2097152 bytes is too large"):
        client.qe_target_info()
    thread.join()
    listener.close()


def test_varint_encoding() -> None:
    assert [varint(n) for n in (0, 1, 127, 128, 300, 15000)] == [
        b"\0", b"\1", b"\x7f", b"\x80\x01", b"\xac\x02", b"\x98\x75"
    ]  # fmt: skip
    assert decode(b"\x08\x96\x01\x12\x02hi") == {1: [150], 2: [b"hi"]}
