"""The warm enclave pool: pre-initialised instances of the built-in runtimes.

epm keeps, per pool key (:mod:`.key`), instance processes that have loaded a
runtime, verified a template bundle's signed manifest and compiled its
module (:mod:`.instance`). A container of that exact key claims one from
epm (:mod:`.claim`); the instance then joins the container — its
namespaces, cgroups and rootfs, as `rune exec` does — verifies the
container's own rootfs, becomes the container's process identity and serves
the init-runelet as its enclave runtime (:mod:`.guest`, driven through
:class:`.proxy.PooledRuntime`). docs/epm.md, "The warm pool", has the
sequence; every message is one SOCK_SEQPACKET datagram (:mod:`.wire`).
"""
