"""The ``v1alpha1.EnclavePoolManager`` service over the :class:`~.store.Store`.

Each request names its pool by ``type`` (proto/github.com/inclavare-containers/
epm/pkg/epm-api/v1alpha1/api.proto). The bundle pools are the original's
naming, ``bundle-cache.<carrier>.cache<level>``, for the carriers here (wasm,
native) and the original's Occlum carrier, so that its shim can use this epm
too; all of them keep directory snapshots (SaveCache copies ``sourcePath`` in,
LoadCache copies it out to ``targetPath``). Other types are INVALID_ARGUMENT,
as in the original.

Fixed from the original (src/inclavare/epm/__init__.py lists them): ListCache
passes (subType, lastCacheID, limit) to the pool in that order (the original
swapped lastCacheID and subType) and starts *after* lastCacheID, as its
comment promises (bolt's Seek started at it); a missing entry is NOT_FOUND,
not an INTERNAL error from decoding nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, NoReturn

import grpc

from .._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2 as pb
from .._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2_grpc as pb_grpc
from .errors import INVALID_ARGUMENT, CacheError
from .store import Entry, Key, Store

log = logging.getLogger("inclavare.epm")
CARRIERS = ("wasm", "native", "occlum")
POOLS = frozenset(f"bundle-cache.{c}.cache{n}" for c in CARRIERS for n in range(3))
PAGE = 1000  # the most ListCache and PickCache answer at once (also a limit of 0)
FILTERS = {"parent.type": "type", "parent.subType": "subType", "parent.ID": "ID"}


class EnclavePoolManager(pb_grpc.EnclavePoolManagerServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def GetCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        entry = self._call(context, lambda: self.store.get(_key(request)), request.type)
        if entry is None:
            _abort(context, CacheError("NOT_FOUND", f"{request.type}/{request.ID}", "not cached"))
        return pb.GetCacheResponse(cache=_cache(entry))

    def PickCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        def pick() -> list[Entry]:
            unknown = sorted(set(request.filters) - set(FILTERS))
            if unknown:
                raise CacheError(
                    INVALID_ARGUMENT, f"filters.{unknown[0]}", f"unknown filter (known: {', '.join(FILTERS)})"
                )
            parent = {FILTERS[k]: v for k, v in request.filters.items()}
            return self.store.children(request.type, request.subType, parent, PAGE)

        return pb.PickCacheResponse(caches=[_cache(e) for e in self._call(context, pick, request.type)])

    def SaveCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        c = request.cache
        parent: Key | None = (c.parent.type, c.parent.subType, c.parent.ID) if c.HasField("parent") else None
        entry = self._call(context, lambda: self.store.save((c.type, c.subType, c.ID), parent, request.sourcePath),
                           c.type)  # fmt: skip
        log.info("saved %s/%s/%s (%d bytes)", c.type, c.subType, c.ID, entry.size)
        return pb.SaveCacheResponse(ok=True)

    def SaveFinalCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        # The original's live-enclave pool published a pre-saved enclave here; a bundle
        # entry is usable as soon as SaveCache returns, so this only says it exists.
        c = request.cache
        if self._call(context, lambda: self.store.get((c.type, c.subType, c.ID)), c.type) is None:
            _abort(context, CacheError("NOT_FOUND", f"{c.type}/{c.ID}", "not cached"))
        return pb.SaveCacheResponse(ok=True)

    def ListCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        def page() -> list[Entry]:
            if request.limit < 0:
                raise CacheError(INVALID_ARGUMENT, "limit", f"{request.limit} is negative")
            limit = min(request.limit or PAGE, PAGE)
            return self.store.list(request.type, request.subType, request.lastCacheID, limit)

        return pb.ListCacheResponse(caches=[_cache(e) for e in self._call(context, page, request.type)])

    def DeleteCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._call(context, lambda: self.store.delete(_key(request)), request.type)
        log.info("deleted %s/%s/%s and what was built from it", request.type, request.subType, request.ID)
        return pb.DeleteCacheResponse(ok=True)

    def LoadCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._call(context, lambda: self.store.load(_key(request), request.targetPath), request.type)
        return pb.LoadCacheResponse(ok=True)

    def Healthz(self, request: Any, context: grpc.ServicerContext) -> Any:
        # "" asks about the service; a pool type about that pool (all share the store).
        if request.type and request.type not in POOLS:
            _abort(context, _unknown(request.type))
        if not self.store.healthy():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the cache database does not answer")
        return pb.HealthzResponse(ok=True)

    def _call(self, context: grpc.ServicerContext, op: Any, typ: str) -> Any:
        if typ not in POOLS:
            _abort(context, _unknown(typ))
        try:
            return op()
        except CacheError as exc:
            _abort(context, exc)
        except (OSError, sqlite3.Error) as exc:
            log.error("%s: %s", typ, exc)
            _abort(context, CacheError("INTERNAL", typ, getattr(exc, "strerror", None) or str(exc)))


def _key(request: Any) -> Key:
    return (request.type, request.subType, request.ID)


def _cache(entry: Entry) -> Any:
    typ, subtype, ident = entry.key
    parent = None
    if entry.parent is not None:
        parent = pb.Cache(type=entry.parent[0], subType=entry.parent[1], ID=entry.parent[2])
    return pb.Cache(type=typ, subType=subtype, ID=ident, savePath=entry.path, parent=parent, size=entry.size,
                    created=entry.created)  # fmt: skip


def _unknown(typ: str) -> CacheError:
    return CacheError(INVALID_ARGUMENT, "type", f"{typ!r} is not a pool of this epm (known: bundle-cache.<wasm|"
                      "native|occlum>.cache<0|1|2>)")  # fmt: skip


def _abort(context: grpc.ServicerContext, exc: CacheError) -> NoReturn:
    context.abort(getattr(grpc.StatusCode, exc.code), str(exc))  # raises: the call ends with this status
    raise AssertionError("grpc's abort returned")
