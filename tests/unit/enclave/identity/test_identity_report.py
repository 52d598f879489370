"""Software reports for an enclave identity, signed by the host software-TEE key,
checked with the attestation layer's own verifier."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.attestation import software
from inclavare.attestation.errors import AttesterError, VerificationFailed
from inclavare.attestation.software import sign_report
from inclavare.enclave.identity import EnclaveIdentity, HostKey, HostKeyError

ME = EnclaveIdentity(hashlib.sha256(b"m").digest(), hashlib.sha256(b"s").digest(), 7, 3, True)
NONCE = bytes(range(64))


@pytest.fixture
def host_key() -> HostKey:
    return HostKey.from_seed(hashlib.sha256(b"test host key").digest())


def test_report_verifies_and_carries_the_identity(host_key):
    evidence = sign_report(ME, NONCE, host_key)
    report = software.verify_report(evidence, [host_key.public_key])
    assert (report.measurement, report.signer, report.product_id, report.svn) == (ME.measurement, ME.signer, 7, 3)
    assert report.debug is True
    assert report.software is True
    assert report.report_data == NONCE
    assert report.host_key_id == host_key.key_id == software.host_key_id(host_key.public_key)
    assert sign_report(ME, NONCE, host_key) == evidence  # Ed25519 is deterministic


def test_report_from_another_host_is_refused(host_key):
    evidence = sign_report(ME, NONCE, HostKey.from_seed(bytes(32)))
    with pytest.raises(VerificationFailed):
        software.verify_report(evidence, [host_key.public_key])


def test_report_data_must_be_64_bytes(host_key):
    for size in (0, 32, 63, 65):
        with pytest.raises(AttesterError, match=f"^software attester: report data must be 64 bytes, not {size}$"):
            sign_report(ME, bytes(size), host_key)


def test_host_key_created_once_and_private(tmp_path):
    path = tmp_path / "lib" / "software-tee-key.pem"
    key = HostKey.load_or_create(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert HostKey.load_or_create(str(path)).key_id == key.key_id
    assert "PRIVATE" not in repr(key)
    evidence = sign_report(ME, NONCE, HostKey.load_or_create(str(path)))
    assert software.verify_report(evidence, [key.public_key]).report_data == NONCE


def test_unusable_host_keys(tmp_path):
    wrong = tmp_path / "rsa.pem"
    wrong.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    wrong.chmod(0o600)
    with pytest.raises(HostKeyError, match=r"rsa\.pem: not an unencrypted PEM private key$"):
        HostKey.load_or_create(str(wrong))
    wrong.chmod(0o640)
    with pytest.raises(HostKeyError, match=r"software-TEE key has mode 0640; it must be 0600$"):
        HostKey.load_or_create(str(wrong))
    with pytest.raises(HostKeyError, match="an Ed25519 seed is 32 bytes"):
        HostKey.from_seed(b"short")
    assert isinstance(HostKey.from_seed(bytes(32)).public_key, ed25519.Ed25519PublicKey)
