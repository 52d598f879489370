"""OCI hooks (runtime-spec config.md#posix-platform-hooks).

Each hook is run with its own path/args/env, the container state JSON on
stdin and an optional timeout in seconds. Failure semantics from the spec:

* prestart, createRuntime, createContainer, startContainer: a failing hook
  is an error — the container is torn down and the operation fails;
* poststart, poststop: a failing hook is logged as a warning and the
  operation carries on.
"""

from __future__ import annotations

import _signal
import os
import time

from .. import _fastjson
from ..errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..spec.model import Hook


def run_hooks(kind: str, hooks: list[Hook], state: dict[str, object]) -> None:
    """Run `hooks` in order; raise HookError naming the first one that fails."""
    if not hooks:
        return
    stdin = _fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        _run_checked(kind, i, hook, stdin)


def _run_checked(kind: str, index: int, hook: Hook, stdin: bytes) -> None:
    status = _run_one(hook, stdin)
    if status is None:
        raise HookError(f"{kind} hook #{index} ({hook.path}) timed out after {hook.timeout}s")
    if status != 0:
        raise HookError(f"{kind} hook #{index} ({hook.path}) failed: {_describe(status)}")


def saved_hooks(config: dict[str, object], kind: str) -> list[Hook]:
    """The `kind` hooks of a container's saved config (state.json), as models:
    `start` and `delete` run them long after create parsed the bundle."""
    section = config.get("hooks")
    raw = section.get(kind) if isinstance(section, dict) else None
    if not raw:
        return []  # the usual case: `start` and `delete` need not import the spec model
    from ..spec.load import build
    from ..spec.model import Hook

    hooks = build(("list", Hook), raw, f"hooks.{kind}", "state.json")
    assert isinstance(hooks, list)
    return [h for h in hooks if isinstance(h, Hook)]


def run_hooks_warn(kind: str, hooks: list[Hook], state: dict[str, object], warn: Callable[[str], None]) -> None:
    """poststart/poststop: every hook runs; a failing one is a warning through
    `warn(msg)`, and "the remaining hooks and lifecycle continue as if the hook
    had succeeded" (runtime.md#lifecycle)."""
    stdin = _fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_checked(kind, i, hook, stdin)
        except HookError as exc:
            warn(str(exc))


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _run_one(hook: Hook, stdin: bytes) -> int | None:
    """Fork/exec one hook; return its wait status, or None on timeout (it is killed)."""
    rfd, wfd = os.pipe()
    argv = hook.args or [hook.path]
    pid = os.fork()
    if pid == 0:  # child: stdin from the pipe, stdout/stderr inherited
        try:
            os.dup2(rfd, 0)
            for signum in (13, 25):  # SIGPIPE, SIGXFSZ: CPython ignores them, execve would keep that
                _signal.signal(signum, _signal.SIG_DFL)
            os.execve(hook.path, argv, _env(hook.env))
        except BaseException as exc:
            os.write(2, f"hook {hook.path}: {exc}\n".encode())
        os._exit(127)
    os.close(rfd)
    # Fed without blocking, between wait polls: a state bigger than the pipe
    # (64 KiB; large annotations) must not hang rune past the hook's timeout
    # when the hook never reads it.
    os.set_blocking(wfd, False)
    return _wait(pid, hook.timeout, _Feeder(wfd, stdin))


class _Feeder:
    """The hook's stdin, written as far as the pipe takes it on each call."""

    __slots__ = ("fd", "pending")

    def __init__(self, fd: int, data: bytes) -> None:
        self.fd = fd
        self.pending = memoryview(data)

    def feed(self) -> None:
        if self.fd < 0:
            return
        try:
            while self.pending:
                self.pending = self.pending[os.write(self.fd, self.pending) :]
        except BlockingIOError:
            return
        except BrokenPipeError:
            pass  # the hook does not read its stdin; that is its right
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _env(env: list[str]) -> dict[str, str]:
    out = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _wait(pid: int, timeout: int | None, stdin: _Feeder) -> int | None:
    # Poll with backoff: a pidfd + select would need the select module, and
    # hooks are rare enough that 1-20 ms of polling latency does not matter.
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.001
    try:
        while True:
            stdin.feed()
            if deadline is None and stdin.fd < 0:  # all fed, no timeout: nothing left to poll for
                return os.waitpid(pid, 0)[1]
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    finally:
        stdin.close()
