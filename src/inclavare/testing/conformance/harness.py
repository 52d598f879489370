"""The checks' side of a run: runtimes made and cleaned up, programs started, refusals judged."""

from __future__ import annotations

import fcntl
import os
import select
import tempfile
import threading
import time
from collections.abc import Callable

from ...enclave.errors import EnclaveStateError
from ...enclave.interface import EnclaveRuntime
from ...errors import EnclaveError, PalError
from .subject import Command, Subject

PROMPT = 5.0  # seconds: the longest a call that must be prompt may take on a loaded CI machine


class Kit:
    """One check's runtimes, files and threads; :meth:`close` releases them all."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.logs: list[str] = []
        self._runtimes: list[EnclaveRuntime] = []
        self._fds: list[int] = []
        self._threads: list[threading.Thread] = []

    def new(self, tee: str | None = None) -> EnclaveRuntime:
        rt = self.subject.factory(tee=tee or self.subject.tee, log=self.logs.append)
        self._runtimes.append(rt)
        return rt

    def ready(self) -> EnclaveRuntime:
        rt = self.new()
        rt.init(self.subject.init_args, "info")
        return rt

    def close(self) -> None:
        for rt in self._runtimes:
            try:
                rt.destroy()
            except EnclaveStateError:
                pass  # the check destroyed it
        for thread in self._threads:
            thread.join(PROMPT)
        for fd in self._fds:
            os.close(fd)

    # -- files -------------------------------------------------------------
    def fd(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close_fd(self, fd: int) -> None:
        self._fds.remove(fd)
        os.close(fd)

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        return self.fd(r), self.fd(w)

    def output_file(self, initial: bytes = b"") -> int:
        """An unnamed O_APPEND file holding `initial`: what a program writes lands after it."""
        with tempfile.TemporaryFile() as f:
            fd = self.fd(os.dup(f.fileno()))
        os.write(fd, initial)
        fcntl.fcntl(fd, fcntl.F_SETFL, os.O_APPEND)
        return fd

    @staticmethod
    def contents(fd: int) -> bytes:
        return os.pread(fd, 1 << 20, 0)

    def devnull(self) -> int:
        return self.fd(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))

    # -- programs ----------------------------------------------------------
    def run(self, rt: EnclaveRuntime, cmd: Command, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """create_process + wait, stdout and stderr in files: (status, out, err)."""
        out, err = self.output_file(), self.output_file()
        if stdin is None:
            src = self.devnull()
        else:
            src, w = self.pipe()
            os.write(w, stdin)  # small: fits the pipe
            self.close_fd(w)
        status = rt.wait(rt.create_process(cmd.path, cmd.argv, cmd.env, (src, out, err)))
        return status, self.contents(out), self.contents(err)

    def start(self, rt: EnclaveRuntime, cmd: Command, stdout: int | None = None) -> int:
        """create_process with stdin /dev/null and stdout `stdout` (else a file); the pid."""
        out = self.output_file() if stdout is None else stdout
        return rt.create_process(cmd.path, cmd.argv, cmd.env, (self.devnull(), out, self.output_file()))

    def background(self, fn: Callable[[], object]) -> Waiter:
        waiter = Waiter(fn)
        self._threads.append(waiter.thread)
        waiter.thread.start()
        return waiter

    def first_line(self, fd: int, deadline: float = PROMPT) -> bytes:
        """What a program wrote to the pipe `fd`, up to its first newline."""
        data = b""
        end = time.monotonic() + deadline
        while not data.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no line from the program within {deadline} s (got {data!r})")
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"the program closed its output before a line (got {data!r})")
            data += chunk
        return data


class Waiter:
    """`fn` in a thread of its own: its result or exception, and when it returned."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.ended_at = 0.0
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc
        self.ended_at = time.monotonic()

    def running(self) -> bool:
        return self.thread.is_alive()

    def join(self, what: str, timeout: float = PROMPT) -> object:
        """The result, failing the check if `fn` is still blocked or raised."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"{what} did not return within {timeout} s")
        if self.error is not None:
            raise AssertionError(f"{what} raised {type(self.error).__name__}: {self.error}") from self.error
        return self.result


def refused(
    rt_name: str | None, kinds: tuple[type[Exception], ...], fn: Callable[..., object], *args: object
) -> Exception:
    """Call `fn`; it must raise one of `kinds` with a one-line message naming the runtime (:func:`judge`)."""
    what = f"{getattr(fn, '__name__', fn)}{args!r}"
    try:
        fn(*args)
    except Exception as exc:
        return judge(rt_name, kinds, exc, what)
    raise AssertionError(f"{what} was not refused")


def judge(rt_name: str | None, kinds: tuple[type[Exception], ...], exc: Exception, what: str) -> Exception:
    """`exc` must be an enclave error (EnclaveError, PalError) of `kinds`, its message one line naming
    the runtime (interface.py: "a one-line message naming the runtime"). `rt_name` None: the message
    need not name it (constructor errors name the setting instead)."""
    if not isinstance(exc, (EnclaveError, PalError)):
        raise AssertionError(f"{what} raised {type(exc).__name__}, not an enclave error: {exc}") from exc
    message = str(exc)
    if not isinstance(exc, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise AssertionError(f"{what}: refused with {type(exc).__name__}, expected {names}: {message}") from exc
    if not message or "\n" in message:
        raise AssertionError(f"{what}: the message must be one line: {message!r}") from exc
    if rt_name is not None and rt_name not in message:
        raise AssertionError(f"{what}: the message does not name the runtime {rt_name!r}: {message}") from exc
    return exc
