"""Checks of create_process and wait: statuses, stdio, argv and env, and how wait blocks."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial
from typing import Any

import pytest

from ...enclave.errors import EnclaveStateError
from ...enclave.interface import EnclaveRuntime
from ...errors import EnclaveError, PalError
from .harness import PROMPT, Kit, judge, refused

ARGV0 = "conformance ärgv0"
ARGS = ["two words", "", "ünïcødé ✓", "-x", "--flag=a b", "  lead", "trail  ", "*", "$HOME"]
SECRET = "s3cr3t-conformance-value"
ENV = ["KIT_A=1", "KIT_SPACE=two words", "KIT_EMPTY=", "KIT_UNI=ünï ✓", "KIT_EQ=a=b", f"KIT_SECRET={SECRET}"]


def exit_statuses(kit: Kit) -> None:
    """wait returns the exit status: 0, 1, 42, 125."""
    rt = kit.ready()
    for status in (0, 1, 42, 125):
        assert kit.run(rt, kit.subject.exits(status))[0] == status, f"exit {status}"


def signal_status(kit: Kit) -> None:
    """A program ended by a signal: wait returns 128+signal."""
    rt = kit.ready()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        cmd = kit.subject.killed_by(sig)
        if cmd is None:
            pytest.skip("this runtime's programs cannot end themselves with a signal")
        assert kit.run(rt, cmd)[0] == 128 + sig, f"a program killed by signal {sig}"


def stdio_fds(kit: Kit) -> None:
    """stdout and stderr go to exactly the fds given, appended (not truncated, not reopened)."""
    rt = kit.ready()
    out, err = kit.output_file(b"before\n"), kit.output_file(b"")
    cmd = kit.subject.prints("to stdout ✓\n", "to stderr\n")
    pid = rt.create_process(cmd.path, cmd.argv, cmd.env, (kit.devnull(), out, err))
    assert rt.wait(pid) == 0
    assert kit.contents(out) == "before\nto stdout ✓\n".encode()
    assert kit.contents(err) == b"to stderr\n"


def stdin_fd(kit: Kit) -> None:
    """stdin comes from the fd given, up to its end of file."""
    rt = kit.ready()
    data = b"line one\n\0binary\xff\nlast line without newline"
    assert kit.run(rt, kit.subject.copies_stdin(), stdin=data) == (0, data, b"")


def argv_exact(kit: Kit) -> None:
    """argv arrives exactly, argv[0] included: spaces, empty strings, unicode, shell characters."""
    rt = kit.ready()
    cmd = kit.subject.shows_argv(ARGV0, ARGS)
    assert cmd.argv[0] == ARGV0, f"shows_argv gave {cmd.argv!r}"
    assert list(cmd.argv[-len(ARGS) :]) == ARGS, f"shows_argv gave {cmd.argv!r}"
    status, out, _ = kit.run(rt, cmd)
    assert status == 0
    assert out.decode().split("\0")[:-1] == list(cmd.argv)


def env_exact(kit: Kit) -> None:
    """The environment is the one given (as the runtime's policy shapes it), and never in the debug log."""
    rt = kit.ready()
    status, out, _ = kit.run(rt, kit.subject.shows_env(ENV))
    assert status == 0
    assert out.decode().split("\0")[:-1] == kit.subject.expected_env(ENV)
    leaked = [line for line in kit.logs if SECRET in line]
    assert not leaked, f"the workload's environment in the debug log: {leaked}"


def log_lines(kit: Kit) -> None:
    """The debug log gets one-line strings."""
    rt = kit.ready()
    kit.run(rt, kit.subject.exits(0))
    rt.destroy()
    for line in kit.logs:
        assert isinstance(line, str), f"debug log entry {line!r}"
        assert "\n" not in line, f"debug log entry {line!r}"


def wait_rules(kit: Kit) -> None:
    """Each process is waited for once: an unknown pid, a second wait and a wait racing another are
    EnclaveStateError."""
    rt = kit.ready()
    refused(rt.name, (EnclaveStateError,), rt.wait, 987654)
    pid = kit.start(rt, kit.subject.exits(3))
    assert rt.wait(pid) == 3
    refused(rt.name, (EnclaveStateError,), rt.wait, pid)
    r, w = kit.pipe()
    cmd = kit.subject.copies_stdin()
    pid = rt.create_process(cmd.path, cmd.argv, cmd.env, (r, kit.output_file(), kit.output_file()))
    waiter = kit.background(lambda: rt.wait(pid))
    time.sleep(0.1)
    refused(rt.name, (EnclaveStateError,), rt.wait, pid)
    kit.close_fd(w)  # end of file: the program exits 0
    assert waiter.join("the first wait") == 0


def _end(rt: EnclaveRuntime, pid: int) -> int:
    """Kill a sleeping program if the runtime can, to save time: the status its wait will return."""
    if not rt.probe()["can_kill"]:
        return 0
    rt.kill(pid, signal.SIGKILL)
    return 128 + signal.SIGKILL


def wait_releases_the_gil(kit: Kit) -> None:
    """While wait blocks in one thread, other Python threads run (it must not hold the GIL)."""
    rt = kit.ready()
    pid = kit.start(rt, kit.subject.sleeps(1))
    ticks = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    gaps, last = [], time.monotonic()
    waiter = kit.background(lambda: rt.wait(pid))
    for _ in range(6):  # a wait holding the GIL stalls this loop, sleep or no sleep
        time.sleep(0.05)
        gaps.append(time.monotonic() - last)
        last = time.monotonic()
    seen, blocked = ticks[0], waiter.running()
    stop.set()
    counter.join()
    assert max(gaps) < 1.0, f"this thread stalled {max(gaps):.2f} s while another blocked in wait"
    assert blocked, "wait returned before its program ended"
    assert seen > 1000, f"a second thread made only {seen} steps in 0.3 s while wait blocked"
    status = _end(rt, pid)
    assert waiter.join("wait", PROMPT + 2) == status


def concurrent_waits(kit: Kit) -> None:
    """Waits for different processes run at the same time, each getting its own status."""
    rt = kit.ready()
    pids = {kit.start(rt, kit.subject.exits(n)): n for n in (5, 6, 7)}
    waiters = {pid: kit.background(partial(rt.wait, pid)) for pid in pids}
    assert {pid: w.join(f"wait({pid})") for pid, w in waiters.items()} == pids


def create_refusals(kit: Kit) -> None:
    """create_process refuses what it cannot run faithfully: no argv[0], NUL bytes (C would cut the
    string short), and a program it cannot start (then or, for runtimes that start at wait, there)."""
    rt = kit.ready()
    cmd = kit.subject.exits(0)
    stdio = (kit.devnull(), kit.output_file(), kit.output_file())
    refused(rt.name, (EnclaveError,), rt.create_process, cmd.path, [], cmd.env, stdio)
    refused(rt.name, (EnclaveError,), rt.create_process, cmd.path, [*cmd.argv, "a\0b"], cmd.env, stdio)
    refused(rt.name, (EnclaveError,), rt.create_process, cmd.path, cmd.argv, [*cmd.env, "A=\0"], stdio)
    bad = kit.subject.unrunnable()
    _refused_at_create_or_wait(rt, bad.path, bad.argv, bad.env, stdio)
    closed = 987  # not open: fstat says EBADF
    try:
        os.fstat(closed)
    except OSError:
        pass
    else:
        pytest.fail(f"fd {closed} is open in the test process")
    _refused_at_create_or_wait(rt, cmd.path, cmd.argv, cmd.env, (closed, stdio[1], stdio[2]))
    assert kit.run(rt, cmd)[0] == 0, "the runtime is still usable"


def _refused_at_create_or_wait(rt: EnclaveRuntime, *args: Any) -> None:
    try:
        pid = rt.create_process(*args)
    except Exception as exc:
        judge(rt.name, (EnclaveError, PalError), exc, f"create_process{args!r}")
        return
    refused(rt.name, (EnclaveError, PalError), rt.wait, pid)
