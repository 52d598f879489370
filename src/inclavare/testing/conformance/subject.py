"""What a runtime's author writes: a :class:`Subject` (how to build the runtime, how to run programs in it)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...enclave.interface import EnclaveRuntime

LONG = 60  # seconds: "runs until it is killed" (every check ends it long before)


@dataclass(frozen=True)
class Command:
    """One ``create_process(path, argv, env, stdio)`` request."""

    path: str
    argv: Sequence[str]
    env: Sequence[str] = field(default_factory=tuple)


class Subject(abc.ABC):
    """The runtime under test, as the conformance checks see it.

    Only :meth:`factory` and :attr:`program` are required when the runtime
    runs the kit's program (``program.c``: every behaviour below is one of
    its requests). A runtime whose programs are something else — scripts of
    its own language, a PAL running host commands — overrides the
    behaviours instead. A behaviour returning ``None`` cannot be expressed
    in this runtime (a wasm module cannot ignore SIGTERM: WASI has no
    signals); the checks that need it are skipped, saying so.
    """

    tee = "software"  # the enclave.type the checks create runtimes for
    init_args = ""  # enclave.runtime.args for init
    program = ""  # the kit program, as create_process is to be given it
    binds_report_data = True  # False: local_report takes only all-zero report data (PAL v3, docs/pal-abi.md)

    @abc.abstractmethod
    def factory(self, *, tee: str, log: Callable[[str], None]) -> EnclaveRuntime:
        """A new runtime, loaded and not initialised: the :class:`~inclavare.enclave.interface.RuntimeFactory`."""

    # -- programs (override to express them otherwise) --------------------
    def command(self, *words: str, env: Sequence[str] = (), argv0: str = "conformance") -> Command:
        """The kit program with request `words`."""
        return Command(self.program, [argv0, *words], list(env))

    def exits(self, status: int) -> Command:
        """Exits with `status`."""
        return self.command("exit", str(status))

    def prints(self, out: str, err: str) -> Command:
        """Writes `out` to stdout and `err` to stderr (exactly that), exits 0."""
        return self.command("print", out, err)

    def sleeps(self, seconds: int = LONG) -> Command:
        """Sleeps `seconds` without output, exits 0."""
        return self.command("sleep", str(seconds))

    def copies_stdin(self) -> Command:
        """Copies stdin to stdout until end of file, exits 0."""
        return self.command("cat")

    def shows_argv(self, argv0: str, args: Sequence[str]) -> Command:
        """Run as ``argv0, ..., *args``; writes each of its argv entries followed by a NUL byte."""
        return self.command("argv", *args, argv0=argv0)

    def shows_env(self, env: Sequence[str]) -> Command:
        """Run with `env`; writes each entry of its environment followed by a NUL byte."""
        return self.command("env", env=env)

    def ignores_sigterm(self) -> Command | None:
        """Ignores SIGTERM, then writes ``ready\\n`` to stdout and sleeps."""
        return self.command("ignore-term", str(LONG))

    def killed_by(self, sig: int) -> Command | None:
        """Ends itself with signal `sig`."""
        return self.command("raise", str(sig))

    def unrunnable(self) -> Command:
        """A program this runtime must refuse to run (create_process, or wait for a deferred start)."""
        return Command("/nonexistent/inclavare-conformance", ["inclavare-conformance"])

    # -- what to expect ----------------------------------------------------
    def expected_env(self, env: Sequence[str]) -> list[str]:
        """The environment a program started with `env` sees (a manifest's policy may filter it)."""
        return list(env)

    def check_report(self, report: bytes, target_info: bytes, report_data: bytes) -> None:
        """Verify a local report (signature, the report data it binds); raise AssertionError if wrong.

        The default accepts any report: override it where reports can be checked."""
        return None
