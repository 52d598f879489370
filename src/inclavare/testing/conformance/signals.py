"""Checks of kill: while a wait blocks in another thread, to one, the latest or all processes, refusals."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ...enclave.errors import EnclaveNotSupported
from ...enclave.interface import PID_ALL, PID_CURRENT, EnclaveRuntime
from ...errors import EnclaveError, PalError
from .harness import PROMPT, Kit, Waiter, judge, refused

SETTLE = 0.2  # seconds a process that must keep running is watched


def _killable(kit: Kit) -> EnclaveRuntime:
    rt = kit.ready()
    if not rt.probe()["can_kill"]:
        pytest.skip("probe() says can_kill is False (kill_not_supported checks the refusal)")
    return rt


def _waiting(kit: Kit, rt: EnclaveRuntime, pid: int) -> Waiter:
    """wait(pid) in a thread, blocked in the runtime by the time this returns."""
    waiter = kit.background(lambda: rt.wait(pid))
    time.sleep(0.05)
    assert waiter.running(), f"wait({pid}) returned while its program should still run"
    return waiter


def _still_running(waiter: Waiter, what: str) -> None:
    time.sleep(SETTLE)
    assert waiter.running(), f"{what} ended, but nothing should have ended it"


def kill_while_waiting(kit: Kit) -> None:
    """kill(pid) from this thread while another blocks in wait: kill returns promptly, wait returns
    128+signal promptly."""
    rt = _killable(kit)
    pid = kit.start(rt, kit.subject.sleeps())
    waiter = _waiting(kit, rt, pid)
    started = time.monotonic()
    rt.kill(pid, signal.SIGTERM)
    took = time.monotonic() - started
    assert took < PROMPT, f"kill took {took:.2f} s while a wait was in progress"
    assert waiter.join("wait after kill") == 128 + signal.SIGTERM


def kill_blocked_reader(kit: Kit) -> None:
    """A program blocked reading a stdin that never ends is killed promptly too."""
    rt = _killable(kit)
    r, _w = kit.pipe()
    cmd = kit.subject.copies_stdin()
    pid = rt.create_process(cmd.path, cmd.argv, cmd.env, (r, kit.output_file(), kit.output_file()))
    waiter = _waiting(kit, rt, pid)
    rt.kill(pid, signal.SIGINT)
    assert waiter.join("wait after kill") == 128 + signal.SIGINT


def kill_all(kit: Kit) -> None:
    """kill(PID_ALL) reaches every process of the runtime, each waited for in its own thread."""
    rt = _killable(kit)
    waiters = [_waiting(kit, rt, kit.start(rt, kit.subject.sleeps())) for _ in range(2)]
    rt.kill(PID_ALL, signal.SIGINT)
    assert [w.join("wait after kill(PID_ALL)") for w in waiters] == [128 + signal.SIGINT] * 2


def kill_current(kit: Kit) -> None:
    """kill(PID_CURRENT) reaches the process created last, and only it; once that one was waited for,
    it reaches nobody (refused, or nothing happens)."""
    rt = _killable(kit)
    first = _waiting(kit, rt, kit.start(rt, kit.subject.sleeps()))
    last = _waiting(kit, rt, kit.start(rt, kit.subject.sleeps()))
    rt.kill(PID_CURRENT, signal.SIGTERM)
    assert last.join("wait of the latest process") == 128 + signal.SIGTERM
    _still_running(first, "the earlier process")
    pid = kit.start(rt, kit.subject.exits(0))
    assert rt.wait(pid) == 0
    try:
        rt.kill(PID_CURRENT, signal.SIGTERM)
    except Exception as exc:
        judge(rt.name, (EnclaveError, PalError), exc, "kill(PID_CURRENT) after the latest was waited for")
    _still_running(first, "the earlier process, after kill(PID_CURRENT) when the latest had ended,")
    rt.kill(PID_ALL, signal.SIGKILL)
    assert first.join("wait after kill(PID_ALL)") == 128 + signal.SIGKILL


def kill_delivers_the_signal(kit: Kit) -> None:
    """kill sends the signal and does not end the process on its own: a program ignoring SIGTERM
    runs on; SIGKILL then ends it."""
    rt = _killable(kit)
    cmd = kit.subject.ignores_sigterm()
    if cmd is None:
        pytest.skip("this runtime's programs cannot ignore a signal")
    r, w = kit.pipe()
    pid = kit.start(rt, cmd, stdout=w)
    assert kit.first_line(r) == b"ready\n"
    waiter = _waiting(kit, rt, pid)
    rt.kill(pid, signal.SIGTERM)
    _still_running(waiter, "a program ignoring SIGTERM")
    rt.kill(pid, signal.SIGKILL)
    assert waiter.join("wait after SIGKILL") == 128 + signal.SIGKILL


def kill_exited_process(kit: Kit) -> None:
    """Like kill(2): signal 0 checks a running process; a process that exited and was not yet waited
    for takes signals without effect (wait returns its own status); once waited for, kill is refused."""
    rt = _killable(kit)
    sleeper = kit.start(rt, kit.subject.sleeps())
    rt.kill(sleeper, 0)
    r, w = kit.pipe()
    pid = kit.start(rt, kit.subject.prints("done\n", ""), stdout=w)
    assert kit.first_line(r) == b"done\n"
    time.sleep(SETTLE)  # it exits right after writing
    rt.kill(pid, signal.SIGTERM)
    assert rt.wait(pid) == 0
    refused(rt.name, (EnclaveError, PalError), rt.kill, pid, signal.SIGTERM)
    rt.kill(sleeper, signal.SIGKILL)
    assert rt.wait(sleeper) == 128 + signal.SIGKILL


def kill_refusals(kit: Kit) -> None:
    """kill refuses a process that is not the runtime's (never signals it) and invalid signals."""
    rt = _killable(kit)
    refused(rt.name, (EnclaveError, PalError), rt.kill, os.getpid(), 0)
    pid = kit.start(rt, kit.subject.sleeps())
    for sig in (-1, 65, 1 << 20):
        refused(rt.name, (EnclaveError, PalError), rt.kill, pid, sig)
    rt.kill(pid, signal.SIGKILL)
    assert rt.wait(pid) == 128 + signal.SIGKILL


def kill_not_supported(kit: Kit) -> None:
    """When probe() says can_kill is False, kill is refused with EnclaveNotSupported and nothing else
    changes: the program runs to its end."""
    rt = kit.ready()
    if rt.probe()["can_kill"]:
        pytest.skip("probe() says can_kill is True (the kill_* checks cover it)")
    pid = kit.start(rt, kit.subject.exits(9))
    for target in (pid, PID_ALL, PID_CURRENT):
        exc = refused(rt.name, (EnclaveNotSupported,), rt.kill, target, signal.SIGTERM)
        assert isinstance(exc, EnclaveNotSupported)
    assert rt.wait(pid) == 9
