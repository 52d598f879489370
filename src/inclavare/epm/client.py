"""A client of epm's v1alpha1.EnclavePoolManager, for the carrier's bundle caches.

Kept to what the carrier needs (get, save, load, delete, list, healthz) and
importable where the carrier is (tests/unit/test_layers.py): it uses
nothing of epm's server side, only the messages generated from proto/ and
grpc, both imported when a client is made — a node without ``[epm] socket``
never loads gRPC. A miss is ``None``/``False``; anything else that goes
wrong — no epm on the socket, a deadline, a refusal — is
:class:`~.errors.EpmUnavailable` with one line, which the carrier answers by
building without caches.
"""

from __future__ import annotations

from typing import Any

from .errors import EpmUnavailable

TIMEOUT = 2.0  # seconds per call: a hung epm must not hold a container's Create for long
Key = tuple[str, str, str]  # (type, subType, ID)


class EpmClient:
    def __init__(self, socket_path: str, timeout: float = TIMEOUT) -> None:
        import grpc

        from .._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2, api_pb2_grpc

        self.socket_path = socket_path
        self.timeout = timeout
        self._grpc = grpc
        self.pb: Any = api_pb2
        self._channel = grpc.insecure_channel(f"unix:{socket_path}")
        self._stub = api_pb2_grpc.EnclavePoolManagerStub(self._channel)

    def __enter__(self) -> EpmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def healthz(self, typ: str = "") -> bool:
        return bool(self._call("Healthz", self.pb.HealthzRequest(type=typ)).ok)

    def get(self, key: Key) -> Any | None:
        """The entry's Cache message, or None if it is not cached."""
        answer = self._call("GetCache", self.pb.GetCacheRequest(type=key[0], subType=key[1], ID=key[2]), miss=True)
        return None if answer is None else answer.cache

    def load(self, key: Key, target: str) -> bool:
        """Copy the entry into `target` (an existing directory); False if it is not cached."""
        request = self.pb.LoadCacheRequest(type=key[0], subType=key[1], ID=key[2], targetPath=target)
        return self._call("LoadCache", request, miss=True) is not None

    def save(self, key: Key, source: str, parent: Key | None = None) -> None:
        cache = self.pb.Cache(type=key[0], subType=key[1], ID=key[2])
        if parent is not None:
            cache.parent.CopyFrom(self.pb.Cache(type=parent[0], subType=parent[1], ID=parent[2]))
        self._call("SaveCache", self.pb.SaveCacheRequest(cache=cache, sourcePath=source))

    def delete(self, key: Key) -> bool:
        """Remove the entry (and what was built from it); False if it was not cached."""
        request = self.pb.DeleteCacheRequest(type=key[0], subType=key[1], ID=key[2])
        return self._call("DeleteCache", request, miss=True) is not None

    def list(self, typ: str, subtype: str = "", last: str = "", limit: int = 0) -> list[Any]:
        request = self.pb.ListCacheRequest(type=typ, subType=subtype, lastCacheID=last, limit=limit)
        return list(self._call("ListCache", request).caches)

    def _call(self, method: str, request: Any, *, miss: bool = False) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            if miss and code == self._grpc.StatusCode.NOT_FOUND:
                return None
            name = code.name if code is not None else "error"
            details = exc.details() if callable(getattr(exc, "details", None)) else ""
            raise EpmUnavailable(f"epm {self.socket_path}", f"{method}: {name}: {details or 'no details'}") from None
