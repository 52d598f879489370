"""The conformance kit fails runtimes that break a promise: the native runtime with one defect each."""

from __future__ import annotations

import copy
import ctypes
import signal
from collections.abc import Callable

import pytest

from inclavare.enclave.errors import EnclaveStateError
from inclavare.errors import EnclaveError
from inclavare.testing.conformance import Kit, Subject, lifecycle, processes, reports, signals


class Defect:
    """A working runtime, but for the methods a subclass overrides."""

    def __init__(self, rt, log: Callable[[str], None]) -> None:
        self.rt, self.log, self.name = rt, log, rt.name

    def __getattr__(self, name: str):
        return getattr(self.rt, name)


class HoldsTheGil(Defect):
    def wait(self, pid):
        ctypes.PyDLL(None).usleep(1_200_000)  # a C call made without releasing the GIL
        return self.rt.wait(pid)


class InitTwice(Defect):
    def init(self, *args):
        try:
            self.rt.init(*args)
        except EnclaveStateError:
            pass


class RaisesValueError(Defect):
    def local_report(self, target_info, report_data):
        if len(report_data) > 64:
            raise ValueError("too long")
        return self.rt.local_report(target_info, report_data)


class MultiLineErrors(Defect):
    def kill(self, pid, sig):
        try:
            self.rt.kill(pid, sig)
        except EnclaveError as exc:
            raise EnclaveError(f"{exc}\ndetails follow") from None


class KillsInsteadOfSignalling(Defect):
    def kill(self, pid, sig):
        self.rt.kill(pid, signal.SIGKILL)


class LogsTheEnvironment(Defect):
    def create_process(self, path, argv, env, stdio):
        self.log(f"{self.name}: create_process env={env}")
        return self.rt.create_process(path, argv, env, stdio)


class SwapsStdoutAndStderr(Defect):
    def create_process(self, path, argv, env, stdio):
        return self.rt.create_process(path, argv, env, (stdio[0], stdio[2], stdio[1]))


class ProbeChangesWithInit(Defect):
    ready = False

    def init(self, *args):
        self.rt.init(*args)
        self.ready = True

    def probe(self):
        return {**self.rt.probe(), "can_report": not self.ready}


def with_defect(subject: Subject, defect: type[Defect]) -> Subject:
    base = type(subject)

    class Broken(base):  # type: ignore[valid-type,misc]
        def factory(self, *, tee, log):
            return defect(base.factory(self, tee=tee, log=log), log)

    broken = copy.copy(subject)
    broken.__class__ = Broken
    return broken


@pytest.mark.parametrize(
    ("defect", "check", "message"),
    [
        (HoldsTheGil, processes.wait_releases_the_gil, r"this thread stalled 1\.\d+ s while another blocked in wait"),
        (InitTwice, lifecycle.init_once, r"init\(.*\) was not refused"),
        (RaisesValueError, reports.local_report_bad_sizes, "raised ValueError, not an enclave error: too long"),
        (MultiLineErrors, signals.kill_refusals, "the message must be one line"),
        (KillsInsteadOfSignalling, signals.kill_while_waiting, r"assert 137 == \(128 \+ <Signals.SIGTERM: 15>\)"),
        (LogsTheEnvironment, processes.env_exact, "the workload's environment in the debug log"),
        (SwapsStdoutAndStderr, processes.stdio_fds, "assert b'before"),
        (ProbeChangesWithInit, lifecycle.probe_is_stable, "probe\\(\\) changed with init"),
    ],
)
def test_the_kit_finds_the_defect(native_subject, defect, check, message):
    kit = Kit(with_defect(native_subject, defect))
    try:
        with pytest.raises(AssertionError, match=message):
            check(kit)
    finally:
        kit.close()


def test_the_unbroken_runtime_passes_those_checks(native_subject):
    """The same checks pass without the defect (so the failures above are the defects')."""
    for check in (lifecycle.init_once, reports.local_report_bad_sizes, signals.kill_refusals,
                  signals.kill_while_waiting, processes.env_exact, processes.stdio_fds):  # fmt: skip
        kit = Kit(native_subject)
        try:
            check(kit)
        finally:
            kit.close()
