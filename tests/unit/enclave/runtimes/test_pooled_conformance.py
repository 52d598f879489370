"""The warm pool's proxy (enclave/pool/proxy.py) and the guest's server (enclave/pool/guest.py)
against the conformance kit: every call of the EnclaveRuntime contract, made by the
init-runelet's side, reaches a real built-in runtime over the pool's wire and comes back
with the same results, errors, concurrency and lifetime rules. Here the server runs in a
thread of this process; epm's preparation and the container hand-over are in
tests/integration/pool."""

from __future__ import annotations

import threading

import pytest

from inclavare.enclave.interface import EnclaveRuntime
from inclavare.enclave.pool import wire
from inclavare.enclave.pool.guest import Server
from inclavare.enclave.pool.proxy import PooledRuntime, capabilities
from inclavare.testing.conformance import RuntimeConformance


class Pooled:
    """The proxy, with `init` standing in for the pool: initialise a real runtime, serve it
    over a socketpair, and from then on answer through :class:`PooledRuntime`."""

    def __init__(self, rt: EnclaveRuntime) -> None:
        self.rt = rt
        self.proxy: PooledRuntime | None = None
        self.name = rt.name

    def init(self, args: str, log_level: str, pooled: tuple[int, int] | None = None) -> None:
        self.rt.init(args, log_level, pooled)
        ours, theirs = wire.pair()
        threading.Thread(target=Server(self.rt, theirs).serve, daemon=True).start()
        self.proxy = PooledRuntime(ours, self.rt.name)

    def probe(self):
        return capabilities(self.name)

    def __getattr__(self, name: str) -> object:
        return getattr(self.proxy if self.proxy is not None else self.rt, name)


class Subject:
    def __init__(self, inner) -> None:
        self.inner = inner

    def factory(self, *, tee, log):
        return Pooled(self.inner.factory(tee=tee, log=log))

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class TestPooledWasm(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, wasm_subject):
        return Subject(wasm_subject)


class TestPooledNative(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, native_subject):
        return Subject(native_subject)
