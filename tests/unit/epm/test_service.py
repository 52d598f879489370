"""The v1alpha1.EnclavePoolManager service through a real gRPC client on its unix socket."""

from __future__ import annotations

import os

import grpc
import pytest

from inclavare._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2 as pb
from inclavare._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2_grpc as pb_grpc
from inclavare.epm.errors import EpmUnavailable

C0, C1, C2 = (f"bundle-cache.wasm.cache{n}" for n in range(3))


@pytest.fixture
def stub(epm):
    channel = grpc.insecure_channel(f"unix:{epm.config.address}")
    yield pb_grpc.EnclavePoolManagerStub(channel)
    channel.close()


def code_of(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=5)
    return info.value.code()


def test_save_get_load_round_trip(epm, source, tmp_path):
    src = source("a", {"enclave.toml": b"runtime = 'wasm'\n", "sub/x": b"12345"})
    os.chmod(os.path.join(src, "sub", "x"), 0o750)
    with epm.client() as c:
        c.save((C1, "", "id-1"), src)
        cache = c.get((C1, "", "id-1"))
        assert (cache.type, cache.ID, cache.size) == (C1, "id-1", 22)
        assert cache.savePath.startswith(epm.config.root + "/data/")
        target = tmp_path / "out"
        target.mkdir()
        assert c.load((C1, "", "id-1"), str(target))
    assert (target / "enclave.toml").read_bytes() == b"runtime = 'wasm'\n"
    assert (target / "sub" / "x").read_bytes() == b"12345"
    assert os.stat(target / "sub" / "x").st_mode & 0o777 == 0o750


def test_a_miss_is_not_found(epm, stub, tmp_path):
    with epm.client() as c:
        assert c.get((C1, "", "nope")) is None
        assert c.load((C1, "", "nope"), str(tmp_path)) is False
        assert c.delete((C1, "", "nope")) is False
    assert code_of(stub.GetCache, pb.GetCacheRequest(type=C1, ID="nope")) == grpc.StatusCode.NOT_FOUND


def test_unknown_pool_is_invalid_argument(epm, stub):
    for call, request in ((stub.GetCache, pb.GetCacheRequest(type="enclave-cache-pool", ID="x")),
                          (stub.ListCache, pb.ListCacheRequest(type="bundle-cache.wasm.cache9")),
                          (stub.Healthz, pb.HealthzRequest(type="nope"))):  # fmt: skip
        assert code_of(call, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.Healthz(pb.HealthzRequest(), timeout=5).ok
    assert stub.Healthz(pb.HealthzRequest(type=C0), timeout=5).ok


def test_list_pages_after_the_last_id_in_order(epm, source, stub):
    """The original passed (lastCacheID, subType) swapped and restarted *at* lastCacheID."""
    src = source("a", {"f": b"x"})
    with epm.client() as c:
        for ident in ("d", "b", "a", "c", "e"):
            c.save((C0, "img", ident), src)
        c.save((C0, "other", "z"), src)
    first = stub.ListCache(pb.ListCacheRequest(type=C0, subType="img", limit=2), timeout=5)
    assert [x.ID for x in first.caches] == ["a", "b"]
    rest = stub.ListCache(pb.ListCacheRequest(type=C0, subType="img", lastCacheID="b", limit=10), timeout=5)
    assert [x.ID for x in rest.caches] == ["c", "d", "e"]
    assert [x.ID for x in stub.ListCache(pb.ListCacheRequest(type=C0, subType="other"), timeout=5).caches] == ["z"]
    assert code_of(stub.ListCache, pb.ListCacheRequest(type=C0, limit=-1)) == grpc.StatusCode.INVALID_ARGUMENT


def test_parents_pick_and_cascade(epm, source, stub):
    src = source("a", {"f": b"x"})
    with epm.client() as c:
        c.save((C0, "", "image"), src)
        c.save((C1, "", "built"), src, parent=(C0, "", "image"))
        c.save((C2, "", "signed-a"), src, parent=(C1, "", "built"))
        c.save((C2, "", "signed-b"), src, parent=(C1, "", "built"))
        picked = stub.PickCache(pb.PickCacheRequest(type=C2, filters={"parent.ID": "built"}), timeout=5)
        assert sorted(x.ID for x in picked.caches) == ["signed-a", "signed-b"]
        assert picked.caches[0].parent.type == C1
        assert code_of(stub.PickCache, pb.PickCacheRequest(type=C2, filters={"size": "1"})) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        # Deleting the image removes what was built and signed from it, data included.
        paths = [c.get((C2, "", "signed-a")).savePath, c.get((C1, "", "built")).savePath]
        assert c.delete((C0, "", "image"))
        assert c.get((C1, "", "built")) is None
        assert c.get((C2, "", "signed-b")) is None
    assert not any(os.path.exists(p) for p in paths)


def test_save_needs_its_parent_cached(epm, source, stub):
    cache = pb.Cache(type=C1, ID="orphan", parent=pb.Cache(type=C0, ID="never-saved"))
    request = pb.SaveCacheRequest(cache=cache, sourcePath=source("a", {"f": b"x"}))
    assert code_of(stub.SaveCache, request) == grpc.StatusCode.FAILED_PRECONDITION


def test_save_final_cache_publishes_only_what_exists(epm, source, stub):
    with epm.client() as c:
        c.save((C2, "", "s"), source("a", {"f": b"x"}))
    assert stub.SaveFinalCache(pb.SaveCacheRequest(cache=pb.Cache(type=C2, ID="s")), timeout=5).ok
    request = pb.SaveCacheRequest(cache=pb.Cache(type=C2, ID="absent"))
    assert code_of(stub.SaveFinalCache, request) == grpc.StatusCode.NOT_FOUND


def test_links_in_the_source_are_refused(epm, source, tmp_path):
    src = source("a", {"f": b"x"})
    os.symlink("/etc/shadow", os.path.join(src, "secret"))
    with epm.client() as c, pytest.raises(EpmUnavailable, match=r"INVALID_ARGUMENT: .*secret: not a regular file"):
        c.save((C1, "", "x"), src)
    with epm.client() as c:
        assert c.get((C1, "", "x")) is None
    assert os.listdir(os.path.join(epm.config.root, "tmp")) == []  # nothing half-copied left behind


def test_bad_ids_and_paths_are_refused(epm, source, stub):
    src = source("a", {"f": b"x"})
    assert code_of(stub.SaveCache, pb.SaveCacheRequest(cache=pb.Cache(type=C0, ID=""), sourcePath=src)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    relative = pb.SaveCacheRequest(cache=pb.Cache(type=C0, ID="r"), sourcePath="relative/dir")
    assert code_of(stub.SaveCache, relative) == grpc.StatusCode.INVALID_ARGUMENT
    missing = pb.SaveCacheRequest(cache=pb.Cache(type=C0, ID="m"), sourcePath="/nonexistent/epm-src")
    assert code_of(stub.SaveCache, missing) == grpc.StatusCode.NOT_FOUND


def test_epm_down_is_unavailable(short_dir):
    from inclavare.epm.client import EpmClient

    client = EpmClient(os.path.join(short_dir, "absent.sock"), timeout=2)
    with client, pytest.raises(EpmUnavailable, match="UNAVAILABLE"):
        client.healthz()
