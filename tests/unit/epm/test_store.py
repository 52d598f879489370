"""The caches survive a restart, stay within max_size and max_age, and recover from a crash."""

from __future__ import annotations

import os

import pytest

from inclavare.epm.errors import EpmUnavailable
from inclavare.epm.store import Store

C0, C1 = "bundle-cache.wasm.cache0", "bundle-cache.wasm.cache1"


def test_entries_survive_a_restart(epm, source, tmp_path):
    with epm.client() as c:
        c.save((C0, "", "image"), source("a", {"files.json": b"{}"}))
        c.save((C1, "", "built"), source("b", {"enclave.toml": b"m"}), parent=(C0, "", "image"))
    epm.restart()
    target = tmp_path / "out"
    target.mkdir()
    with epm.client() as c:
        assert c.get((C1, "", "built")).parent.ID == "image"
        assert c.load((C1, "", "built"), str(target))
    assert (target / "enclave.toml").read_bytes() == b"m"
    assert os.stat(epm.config.root).st_mode & 0o777 == 0o700
    assert os.stat(epm.config.database).st_mode & 0o777 == 0o600


def test_least_recently_used_go_past_max_size(epm_factory, source, tmp_path):
    epm = epm_factory(max_size=1 << 20)
    third = 300 << 10  # three fit in 1 MiB, four do not
    with epm.client() as c:
        for name in ("a", "b", "c"):
            c.save((C1, "", name), source(name, {"f": b"x" * third}))
            epm.clock.offset += 1
        out = tmp_path / "out"
        out.mkdir()
        assert c.load((C1, "", "a"), str(out))  # "a" is now more recently used than "b"
        epm.clock.offset += 1
        c.save((C1, "", "d"), source("d", {"f": b"x" * third}))
        assert [x.ID for x in c.list(C1)] == ["a", "c", "d"]
    assert epm.store is not None
    assert epm.store.total() <= 1 << 20
    assert len(os.listdir(os.path.join(epm.config.root, "data"))) == 3  # b's data went with its record


def test_an_entry_larger_than_the_cache_is_refused(epm_factory, source):
    epm = epm_factory(max_size=1 << 20)
    with epm.client() as c:
        with pytest.raises(EpmUnavailable, match="RESOURCE_EXHAUSTED"):
            c.save((C1, "", "huge"), source("h", {"f": b"x" * ((1 << 20) + 1)}))
        assert c.list(C1) == []


def test_entries_expire_after_max_age(epm_factory, source):
    epm = epm_factory(max_age=3600)
    with epm.client() as c:
        c.save((C0, "", "image"), source("a", {"f": b"x"}))
        c.save((C1, "", "built"), source("b", {"f": b"y"}), parent=(C0, "", "image"))
        epm.clock.offset += 3599
        assert c.get((C1, "", "built")) is not None
        epm.clock.offset += 2
        assert c.get((C1, "", "built")) is None
        assert c.list(C0) == []
    assert os.listdir(os.path.join(epm.config.root, "data")) == []


def test_a_crash_leaves_no_record_without_data_nor_data_without_record(tmp_path, source):
    root = str(tmp_path / "root")
    store = Store(root, os.path.join(root, "epm.db")).open()
    store.save((C0, "", "kept"), None, source("a", {"f": b"x"}))
    lost = store.save((C0, "", "lost"), None, source("b", {"f": b"y"}))
    store.save((C1, "", "child"), (C0, "", "lost"), source("c", {"f": b"z"}))
    store.close()
    # What a crash between the steps of save and delete leaves behind:
    os.unlink(os.path.join(lost.path, "f"))
    os.rmdir(lost.path)
    os.mkdir(os.path.join(root, "data", "stray"))
    os.mkdir(os.path.join(root, "tmp", "half-copied"))
    store = Store(root, os.path.join(root, "epm.db")).open()
    try:
        assert store.get((C0, "", "kept")) is not None
        assert store.get((C0, "", "lost")) is None
        assert store.get((C1, "", "child")) is None  # built from what is gone
        assert sorted(os.listdir(os.path.join(root, "data"))) == [os.path.basename(store.get((C0, "", "kept")).path)]
        assert os.listdir(os.path.join(root, "tmp")) == []
    finally:
        store.close()
