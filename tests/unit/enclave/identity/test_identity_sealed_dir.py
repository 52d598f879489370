"""The sealed directory: encrypted at rest, names bound, the runtime-facing helpers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat

import pytest

from inclavare.enclave.identity import EnclaveIdentity, Policy, SealedDir, SealError

ME = EnclaveIdentity(hashlib.sha256(b"enclave").digest(), hashlib.sha256(b"signer").digest(), 1, 2, False)


@pytest.fixture
def sdir(tmp_path, host_secret) -> SealedDir:
    return SealedDir(str(tmp_path / "sealed"), ME, Policy.MRENCLAVE, secret=host_secret)


def test_write_read_list(sdir):
    assert sdir.list() == []
    sdir.write("db.key", b"k" * 32)
    sdir.write("config.json", b'{"a": 1}')
    sdir.write("config.json", b'{"a": 2}')  # overwrite
    assert sdir.list() == ["config.json", "db.key"]
    assert sdir.read("config.json") == b'{"a": 2}'
    assert sdir.read_all() == {"config.json": b'{"a": 2}', "db.key": b"k" * 32}
    for entry in os.scandir(sdir.path):
        assert entry.name.endswith(".sealed")
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600
        assert b"k" * 32 not in open(entry.path, "rb").read()  # noqa: SIM115 - tiny test read
    assert stat.S_IMODE(os.stat(sdir.path).st_mode) == 0o700
    sdir.remove("db.key")
    sdir.remove("db.key")  # removing twice is fine
    assert sdir.list() == ["config.json"]


def test_swapped_files_are_refused(sdir):
    sdir.write("a", b"alpha")
    sdir.write("b", b"beta")
    a, b = (os.path.join(sdir.path, n + ".sealed") for n in "ab")
    os.rename(a, a + ".tmp")
    os.rename(b, a)
    os.rename(a + ".tmp", b)
    for name in "ab":
        with pytest.raises(SealError, match=f"^{sdir.path}/{name}.sealed: cannot unseal: authentication failed$"):
            sdir.read(name)
    shutil.copy(a, os.path.join(sdir.path, "c.sealed"))  # a copy under a new name
    with pytest.raises(SealError, match="authentication failed"):
        sdir.read("c")


def test_other_enclaves_cannot_read(tmp_path, sdir, host_secret):
    sdir.write("secret", b"s")
    stranger = SealedDir(
        sdir.path, dataclasses.replace(ME, measurement=bytes(32)), Policy.MRENCLAVE, secret=host_secret
    )
    with pytest.raises(SealError, match="authentication failed"):
        stranger.read("secret")
    signer_dir = SealedDir(sdir.path, ME, Policy.MRSIGNER, secret=host_secret)
    with pytest.raises(SealError, match="sealed under mrenclave, not mrsigner"):
        signer_dir.read("secret")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "x\0y", "n" * 241, "\udcff\ud800"])
def test_bad_names(sdir, name):
    with pytest.raises(SealError, match=r"name: .* is not a plain file name$"):
        sdir.write(name, b"x")


def test_missing_file(sdir):
    with pytest.raises(SealError, match=r"nope.sealed: No such file or directory$"):
        sdir.read("nope")


def test_export_and_import(tmp_path, sdir):
    sdir.write("one", b"1")
    sdir.write("two", b"2")
    work = tmp_path / "tmpfs"
    work.mkdir()
    assert sdir.export_to(str(work)) == ["one", "two"]
    assert (work / "one").read_bytes() == b"1"
    assert stat.S_IMODE((work / "two").stat().st_mode) == 0o600
    (work / "two").write_bytes(b"2 changed by the workload")
    (work / "three").write_bytes(b"3")
    (work / ".cache").write_bytes(b"ignored")
    (work / "subdir").mkdir()
    assert sdir.import_from(str(work)) == ["one", "three", "two"]
    assert sdir.read_all() == {"one": b"1", "three": b"3", "two": b"2 changed by the workload"}


def test_a_name_swapped_after_listing_is_never_followed(tmp_path):
    """import_from lists, then opens: what is at the name by then must still be
    a regular file — a symlink to another file (or a fifo) is skipped."""
    from inclavare.enclave.identity.sealed_dir import _read_regular

    (tmp_path / "secret").write_bytes(b"not the workload's")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "plain").write_bytes(b"ok")
    assert _read_regular(str(tmp_path / "link")) is None
    assert _read_regular(str(tmp_path / "fifo")) is None
    assert _read_regular(str(tmp_path / "plain")) == b"ok"


def test_export_fails_before_writing_anything(tmp_path, sdir):
    sdir.write("good", b"g")
    sdir.write("bad", b"b")
    path = os.path.join(sdir.path, "bad.sealed")
    data = bytearray(open(path, "rb").read())  # noqa: SIM115
    data[-1] ^= 1
    with open(path, "wb") as f:
        f.write(data)
    work = tmp_path / "out"
    work.mkdir()
    with pytest.raises(SealError, match=r"bad\.sealed: cannot unseal"):
        sdir.export_to(str(work))
    assert list(work.iterdir()) == []
