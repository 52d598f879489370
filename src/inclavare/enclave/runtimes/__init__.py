"""inclavare's built-in enclave runtimes: software enclaves for hosts without a TEE.

Both implement :class:`inclavare.enclave.interface.EnclaveRuntime` and are
registered as entry points (``enclave.runtime.path=wasm`` / ``=native``,
``enclave.type=software``):

- :mod:`.wasm`   a WASI preview-1 module in wasmtime, one thread and one
                 engine per process, killed through epoch interruption;
- :mod:`.native` an unmodified static Linux program in the spirit of
                 ``gramine-direct``: sealed verified copy, seccomp,
                 no_new_privs, RLIMIT_AS, non-dumpable.

Both start from a signed enclave manifest (:mod:`inclavare.enclave.identity`)
that ``init`` verifies, and both answer ``local_report`` with software
evidence for the identity verified there. The shared part (options,
verification, the process table, reports) is :mod:`._base`. See
docs/builtin-runtimes.md.
"""

from __future__ import annotations
