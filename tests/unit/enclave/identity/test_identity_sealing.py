"""Sealing: both policies, the SVN rule, tampering, wrong secrets, and the host secret file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat

import pytest

from inclavare.enclave.identity import EnclaveIdentity, HostKeyError, HostSecret, Policy, SealError, seal, unseal
from inclavare.enclave.identity.sealing import HEADER, blob_policy

AUTH = "cannot unseal: authentication failed"
ME = EnclaveIdentity(hashlib.sha256(b"enclave v1").digest(), hashlib.sha256(b"signer").digest(), 7, 3, False)
PLAIN = b"database password: hunter2"


def other(**changes) -> EnclaveIdentity:
    return dataclasses.replace(ME, **changes)


@pytest.mark.parametrize("policy", list(Policy))
def test_round_trip(host_secret, policy):
    blob = seal(ME, policy, PLAIN, b"context", secret=host_secret)
    assert PLAIN not in blob
    assert unseal(ME, blob, b"context", secret=host_secret) == PLAIN
    assert unseal(ME, blob, b"context", policy=policy, secret=host_secret) == PLAIN
    assert blob_policy(blob) == (policy, 3)
    assert seal(ME, policy, b"", secret=host_secret) != seal(ME, policy, b"", secret=host_secret)  # fresh key id


def test_mrenclave_binds_the_measurement(host_secret):
    blob = seal(ME, Policy.MRENCLAVE, PLAIN, secret=host_secret)
    for stranger in (other(measurement=bytes(32)), other(isv_prod_id=8), other(debug=True)):
        with pytest.raises(SealError, match=f"^sealed blob: {AUTH}$"):
            unseal(stranger, blob, secret=host_secret)
    # Same code re-signed by someone else still has the same MRENCLAVE.
    assert unseal(other(signer=bytes(32)), blob, secret=host_secret) == PLAIN


def test_mrsigner_binds_signer_and_product(host_secret):
    blob = seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret)
    assert unseal(other(measurement=bytes(32)), blob, secret=host_secret) == PLAIN  # a new build, same signer
    for stranger in (other(signer=bytes(32)), other(isv_prod_id=8), other(debug=True)):
        with pytest.raises(SealError, match=f"^sealed blob: {AUTH}$"):
            unseal(stranger, blob, secret=host_secret)


def test_svn_rule(host_secret):
    blob = seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret)  # sealed at SVN 3
    for newer in (3, 4, 65535):
        assert unseal(other(isv_svn=newer, measurement=bytes(32)), blob, secret=host_secret) == PLAIN
    with pytest.raises(SealError, match=r"^sealed blob: header.isv_svn: sealed at SVN 3; this enclave has SVN 2$"):
        unseal(other(isv_svn=2), blob, secret=host_secret)
    # An enclave may seal for an older SVN so that older versions can still read it (SGX KEYREQUEST.ISVSVN).
    old = seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret, svn=1)
    assert unseal(other(isv_svn=1), old, secret=host_secret) == PLAIN
    with pytest.raises(SealError, match="cannot seal at SVN 4 above this enclave's SVN 3"):
        seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret, svn=4)


def test_lowering_the_stored_svn_does_not_help(host_secret):
    blob = bytearray(seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret))
    blob[10:12] = (2).to_bytes(2, "big")  # claim SVN 2 so an SVN-2 enclave would try
    with pytest.raises(SealError, match=f"^sealed blob: {AUTH}$"):
        unseal(other(isv_svn=2), bytes(blob), secret=host_secret)


def test_every_tampered_byte_is_refused(host_secret):
    blob = seal(ME, Policy.MRENCLAVE, PLAIN, b"aad", secret=host_secret)
    messages = set()
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= bit
            with pytest.raises(SealError) as info:
                unseal(ME, bytes(bad), b"aad", secret=host_secret)
            messages.add(str(info.value).split(": ", 1)[1])
            if i >= 12:  # key id, nonce, ciphertext and tag: indistinguishable
                assert str(info.value) == f"sealed blob: {AUTH}"
    for cut in (0, 1, HEADER.size, len(blob) - 1):
        with pytest.raises(SealError):
            unseal(ME, blob[:cut], b"aad", secret=host_secret)
    assert all("\n" not in m for m in messages)


def test_no_oracle_and_no_secret_in_errors(host_secret):
    blob = seal(ME, Policy.MRENCLAVE, PLAIN, b"aad", secret=host_secret)
    wrong_secret = HostSecret(bytes(32))
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    errors = []
    for attempt in (
        lambda: unseal(ME, blob, b"other aad", secret=host_secret),
        lambda: unseal(ME, blob, b"aad", secret=wrong_secret),
        lambda: unseal(ME, tampered, b"aad", secret=host_secret),
        lambda: unseal(other(measurement=bytes(32)), blob, b"aad", secret=host_secret),
    ):
        with pytest.raises(SealError) as info:
            attempt()
        errors.append(str(info.value))
    assert set(errors) == {f"sealed blob: {AUTH}"}
    text = " ".join([*errors, repr(host_secret)])
    assert PLAIN.decode() not in text
    assert hashlib.sha256(b"test host secret").hexdigest()[:16] not in text


def test_policy_must_match_when_given(host_secret):
    blob = seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret)
    with pytest.raises(SealError, match=r"^x.bin: header.policy: sealed under mrsigner, not mrenclave$"):
        unseal(ME, blob, policy=Policy.MRENCLAVE, secret=host_secret, source="x.bin")


def test_header_format_errors(host_secret):
    blob = seal(ME, Policy.MRSIGNER, PLAIN, secret=host_secret)
    cases = [
        (b"NOTSEAL!" + blob[8:], "not a sealed blob (bad magic)"),
        (blob[:8] + b"\x02" + blob[9:], "header.version: version 2 is not supported"),
        (blob[:9] + b"\x07" + blob[10:], "header.policy: unknown policy 7"),
        (blob[:20], "truncated: not a sealed blob"),
    ]
    for bad, message in cases:
        with pytest.raises(SealError, match=f"^sealed blob: {message.replace('(', '.').replace(')', '.')}$"):
            unseal(ME, bad, secret=host_secret)


def test_deterministic_with_injected_randomness(host_secret):
    def rng(n: int) -> bytes:
        return bytes(range(n))

    a = seal(ME, Policy.MRENCLAVE, PLAIN, secret=host_secret, rng=rng)
    assert a == seal(ME, Policy.MRENCLAVE, PLAIN, secret=host_secret, rng=rng)
    assert a[:12] == b"ICLVSEAL\x01\x01\x00\x03"
    assert a[12:44] == bytes(range(32))


def test_host_secret_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "state" / "host-secret"
    first = HostSecret.load_or_create(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.stat().st_size == 32
    blob = seal(ME, Policy.MRENCLAVE, PLAIN, secret=first)
    assert unseal(ME, blob, secret=HostSecret.load_or_create(str(path))) == PLAIN
    assert [p.name for p in path.parent.iterdir()] == ["host-secret"]  # no temporary left behind
    assert str(path) in repr(first)
    assert path.read_bytes().hex() not in repr(first)


def test_unsafe_host_secret_files_are_refused(tmp_path):
    loose = tmp_path / "loose"
    loose.write_bytes(bytes(32))
    loose.chmod(0o644)
    with pytest.raises(HostKeyError, match=r"loose: host secret has mode 0644; it must be 0600$"):
        HostSecret.load_or_create(str(loose))
    short = tmp_path / "short"
    short.write_bytes(bytes(31))
    short.chmod(0o600)
    with pytest.raises(HostKeyError, match=r"short: host secret must be exactly 32 bytes, not 31$"):
        HostSecret.load_or_create(str(short))
    link = tmp_path / "link"
    os.symlink(short, link)
    with pytest.raises(HostKeyError, match=r"link: cannot open host secret"):
        HostSecret.load_or_create(str(link))
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(HostKeyError, match="is not a regular file"):
        HostSecret.load_or_create(str(directory))
