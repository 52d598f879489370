"""Conformance kit for enclave runtimes: one suite that every ``EnclaveRuntime`` must pass.

A PAL, the built-in ``wasm`` and ``native`` runtimes and a third party's
runtime all promise the same things (src/inclavare/enclave/interface.py,
docs/pal-abi.md): probe, init once, the call order, exit statuses, stdio,
argv and env delivered exactly, kill while a wait blocks in another thread
(without the GIL held), reports, destroy. The kit checks them through the
interface only, in the style of ``trio.testing``'s stream checks: a runtime
author says how to build the runtime and how to run programs in it; the kit
brings the suite::

    import pytest
    from inclavare.testing.conformance import RuntimeConformance, Subject, build_native

    class MySubject(Subject):
        tee = "software"
        init_args = "manifest=/app/kit.toml"
        program = "/app/conformance"            # the kit's program.c, built for this runtime

        def factory(self, *, tee, log):
            return MyRuntime(tee=tee, log=log)   # loaded, not initialised

    class TestMyRuntime(RuntimeConformance):
        @pytest.fixture
        def conformance_subject(self):
            return MySubject()

``program.c`` (built by :func:`build_native` or :func:`build_wasm`) does
every behaviour the checks need; a runtime running other kinds of programs
overrides :class:`Subject`'s behaviour methods instead (``exits``,
``prints``, ``sleeps``, ...), or returns ``None`` from one it cannot
express, which skips the checks that need it. A failing check says which
promise was broken. The kit needs pytest; nothing in rune imports it.
"""

from __future__ import annotations

import pytest

# Before the checks are imported: a failed assert then shows both sides, as in a test module.
pytest.register_assert_rewrite(
    *(f"{__name__}.{m}" for m in ("harness", "lifecycle", "processes", "reports", "signals"))
)
# ruff: noqa: E402

from .harness import Kit, refused
from .program import PROGRAM_C, build_native, build_wasm
from .subject import Command, Subject
from .suite import CHECKS, RuntimeConformance

__all__ = ["CHECKS", "PROGRAM_C", "Command", "Kit", "RuntimeConformance", "Subject", "build_native",
           "build_wasm", "refused"]  # fmt: skip
