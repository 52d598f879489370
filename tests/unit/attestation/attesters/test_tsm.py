"""The configfs-tsm attester (TDX, SEV-SNP) against a kernel-like fake configfs tree."""

from __future__ import annotations

import os

import pytest

from inclavare.attestation import EvidenceKind, Tee, detect
from inclavare.attestation.attesters import (
    AttesterError,
    AttesterOptions,
    NotSupportedOnPlatform,
    TsmAttester,
    TsmRace,
    create,
)
from inclavare.attestation.attesters.peek import claimed
from inclavare.attestation.attesters.tsm import ConfigfsIO

from .fake_configfs import SNP_TEMPLATE, TDX_TEMPLATE, FakeTsm

RD = bytes(range(64))


def test_tdx_evidence_carries_the_report_data_and_the_entry_is_removed(tmp_path) -> None:
    fake = FakeTsm(tmp_path / "report", "tdx_guest")
    attester = TsmAttester(Tee.TDX, str(fake.root), io=fake)
    evidence = attester.collect_evidence(RD)
    assert evidence.kind == EvidenceKind.TDX_QUOTE == detect(evidence.data)
    assert claimed(evidence).report_data == RD
    assert evidence.data[:568] == TDX_TEMPLATE[:568]
    assert evidence.data[632:] == TDX_TEMPLATE[632:]
    assert len(fake.created) == 1
    assert os.path.basename(fake.created[0]).startswith(f"inclavare-{os.getpid()}-")
    assert os.listdir(fake.root) == []
    assert fake.entries == {}
    report = attester.request(b"short nonce")
    assert (report.provider, report.generation, report.auxblob) == ("tdx_guest", 1, b"")
    assert report.outblob[568:632] == b"short nonce".ljust(64, b"\0")


def test_snp_with_privlevel_writes_both_inputs_and_reads_auxblob(tmp_path) -> None:
    fake = FakeTsm(tmp_path / "report", "sev_guest", floor=1)
    attester = TsmAttester(Tee.SEV_SNP, str(fake.root), privlevel=2, io=fake)
    report = attester.request(RD)
    assert (report.provider, report.generation, report.auxblob) == ("sev_guest", 2, b"certificate table")
    assert report.outblob[0x50:0x90] == RD
    assert len(report.outblob) == len(SNP_TEMPLATE)
    evidence = attester.collect_evidence(RD)
    assert evidence.kind == EvidenceKind.SNP_REPORT
    assert claimed(evidence).report_data == RD
    with pytest.raises(AttesterError, match=r"sev-snp attester: privlevel 0 is below the floor 1$"):
        TsmAttester(Tee.SEV_SNP, str(fake.root), privlevel=0, io=fake).collect_evidence(RD)
    assert os.listdir(fake.root) == []


def test_one_race_is_retried_and_a_persistent_writer_is_reported(tmp_path) -> None:
    fake = FakeTsm(tmp_path / "report", "tdx_guest")
    fake.interfere = 1
    evidence = TsmAttester(Tee.TDX, str(fake.root), io=fake).collect_evidence(RD)
    assert claimed(evidence).report_data == RD
    assert fake.interfere == 0
    fake.interfere = 5
    with pytest.raises(
        TsmRace, match=r"generation changed while reading in all 3 attempts \(expected->read: 1->2, 3->4, 5->6\)"
    ):
        TsmAttester(Tee.TDX, str(fake.root), io=fake).collect_evidence(RD)
    assert os.listdir(fake.root) == []


def test_wrong_provider_privlevel_without_support_and_ignored_inblob(tmp_path) -> None:
    snp = FakeTsm(tmp_path / "snp", "sev_guest")
    with pytest.raises(
        AttesterError, match=r"tdx attester: configfs-tsm provider is 'sev_guest' \(sev-snp\), not tdx$"
    ):
        TsmAttester(Tee.TDX, str(snp.root), io=snp).collect_evidence(RD)
    tdx = FakeTsm(tmp_path / "tdx", "tdx_guest")
    with pytest.raises(AttesterError, match=r"tdx attester: configfs-tsm provider has no privlevel$"):
        TsmAttester(Tee.TDX, str(tdx.root), privlevel=0, io=tdx).collect_evidence(RD)
    lazy = FakeTsm(tmp_path / "lazy", "tdx_guest", ignore_inblob=True)
    with pytest.raises(AttesterError, match="outblob does not carry the requested report data"):
        TsmAttester(Tee.TDX, str(lazy.root), io=lazy).collect_evidence(RD)
    for fake in (snp, tdx, lazy):
        assert os.listdir(fake.root) == []


def test_kernel_errors_name_the_attribute(tmp_path) -> None:
    fake = FakeTsm(tmp_path / "report", "tdx_guest")
    attester = TsmAttester(Tee.TDX, str(fake.root), io=fake)
    with pytest.raises(AttesterError, match="report data must be 64 bytes, not 65"):
        attester.collect_evidence(bytes(65))
    with pytest.raises(AttesterError, match="inblob is at most 64 bytes"):
        attester.request(bytes(65))
    with pytest.raises(AttesterError, match=r"privlevel must be 0\.\.3, not 4"):
        TsmAttester(Tee.SEV_SNP, str(fake.root), privlevel=4, io=fake)
    with pytest.raises(AttesterError, match="aws-nitro is not a configfs-tsm TEE"):
        TsmAttester(Tee.NITRO, str(fake.root), io=fake)
    entry = tmp_path / "report" / "x"
    fake.mkdir(str(entry))
    with pytest.raises(OSError, match="Permission denied"):
        fake.write(str(entry / "outblob"), b"x")
    with pytest.raises(OSError, match="Invalid argument"):
        fake.read(str(entry / "outblob"))


def test_real_io_reads_and_writes_whole_values(tmp_path) -> None:
    io = ConfigfsIO()
    path = str(tmp_path / "attr")
    open(path, "wb").close()
    io.write(path, b"0123\n")
    assert io.read(path) == b"0123\n"
    assert io.exists(path)
    assert io.isdir(str(tmp_path))
    io.mkdir(str(tmp_path / "d"))
    io.rmdir(str(tmp_path / "d"))
    assert not io.exists(str(tmp_path / "d"))


def test_missing_interface_is_not_supported_on_this_platform(tmp_path) -> None:
    missing = str(tmp_path / "no-configfs")
    for name, tee in (("tdx", "tdx"), ("sev_snp", "sev-snp")):
        attester = create(name, AttesterOptions(tsm_root=missing))
        assert attester.name == tee
        with pytest.raises(NotSupportedOnPlatform) as info:
            attester.collect_evidence(RD)
        assert str(info.value) == (
            f"{tee} attester: not supported on this platform: no configfs-tsm report interface at {missing} "
            "(needs a TDX or SEV-SNP guest, Linux 6.7+ and configfs mounted)"
        )
