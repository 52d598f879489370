"""What is particular to PALs, in process, through the fixture PALs: version negotiation, signals
kept off the PAL's thread, two PALs at once, what pal_init receives, the not-supported messages.

The interface itself (states, statuses, stdio, argv/env, kill, reports) is
checked for every version by the conformance kit, test_pal_conformance.py."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest

from inclavare.enclave.errors import EnclaveNotSupported, PalCallFailed
from inclavare.enclave.pal import PalRuntime

ALL = ["v1", "v2", "v3"]
KILLABLE = ["v2", "v3"]


@pytest.fixture
def open_pal(pal):
    """open_pal(variant, args="") -> an initialised PalRuntime, destroyed afterwards."""
    opened: list[PalRuntime] = []

    def make(variant: str, args: str = "", **kw: object) -> PalRuntime:
        rt = PalRuntime(pal(variant), **kw)
        rt.init(args, "info")
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        if rt._life.state != "destroyed":
            rt.destroy()


def run(rt: PalRuntime, argv: list[str]) -> tuple[int, bytes]:
    """Run argv through the runtime with stdout on a pipe: (exit status, stdout)."""
    out_r, out_w = os.pipe()
    try:
        status = rt.wait(rt.create_process(argv[0], argv, [], (0, out_w, 2)))
    finally:
        os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        return status, f.read()


@pytest.mark.parametrize(("variant", "version"), [("v1", 1), ("v1-noversion", 1), ("v2", 2), ("v3", 3)])
def test_version_negotiation(pal, variant, version):
    rt = PalRuntime(pal(variant))
    caps = rt.probe()
    assert rt.api_version == version
    assert caps == {
        "name": f"liberpal-{variant}.so",
        "kind": "pal",
        "source": pal(variant),
        "api_version": version,
        "tee": "intelSgx",
        "can_kill": version >= 2,
        "can_report": version == 3,
    }


def test_signals_do_not_interrupt_a_pal_blocked_in_a_worker(open_pal):
    """This PAL fails with -EINTR if a signal lands on its thread (as PALs
    written for Go may). The main thread blocks SIGUSR1 here, as a signal
    loop built on sigwait does, so the kernel would pick the worker for it;
    the loader must keep signals off the thread that is inside the PAL."""
    rt = open_pal("v2-eintr")
    old = signal.signal(signal.SIGUSR1, lambda _signo, _frame: None)
    pid = rt.create_process("/bin/sleep", ["sleep", "0.3"], [], (0, 1, 2))
    result: list[object] = []

    def wait() -> None:
        try:
            result.append(rt.wait(pid))
        except PalCallFailed as exc:
            result.append(str(exc))

    worker = threading.Thread(target=wait)  # created before main blocks: inherits no mask
    worker.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        time.sleep(0.05)
        for _ in range(10):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.01)
        worker.join(5)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR1, old)
    assert result == [0]


def test_two_pals_coexist(pal, open_pal, init_record, tmp_path):
    copy = str(tmp_path / "liberpal-copy.so")
    shutil.copy(pal("v3"), copy)  # another file: its own copy of the C globals
    a = open_pal("v3", "first")
    b = PalRuntime(copy)
    b.init("second", "debug", pooled=(5, 0x1000))
    c = open_pal("v2")
    assert init_record(pal("v3")).startswith("args=first;")
    assert init_record(copy) == "args=second;log_level=debug;fd=5;addr=4096"
    assert run(a, ["/bin/echo", "a"]) == (0, b"a\n")
    assert run(b, ["/bin/echo", "b"]) == (0, b"b\n")
    assert run(c, ["/bin/echo", "c"]) == (0, b"c\n")
    b.destroy()


@pytest.mark.parametrize("variant", ALL)
def test_init_passes_args_with_commas_as_spaces_and_the_log_level(pal, init_record, variant):
    rt = PalRuntime(pal(variant))
    rt.init("debug,no-epm extra", "warning")
    suffix = ";fd=-1;addr=0"  # v3: no pooled enclave; v1/v2 have no such fields
    assert init_record(pal(variant)) == "args=debug no-epm extra;log_level=warning" + suffix
    rt.destroy()


def test_pooled_enclave_reaches_v3_and_is_refused_below(pal, init_record):
    rt = PalRuntime(pal("v3"))
    rt.init("", "info", pooled=(9, 0x7F0000000000))
    assert init_record(pal("v3")).endswith(";fd=9;addr=139637976727552")
    rt.destroy()
    with pytest.raises(EnclaveNotSupported) as err:
        PalRuntime(pal("v2")).init("", "info", pooled=(9, 1))
    assert str(err.value) == ("enclave runtime liberpal-v2.so: pooled enclaves need pal api version 3, this PAL has 2")


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("v1", "enclave runtime liberpal-v1.so: local reports need pal api version 3, this PAL has 1"),
        ("v2", "enclave runtime liberpal-v2.so: local reports need pal api version 3, this PAL has 2"),
    ],
)
def test_local_report_before_v3(open_pal, variant, message):
    with pytest.raises(EnclaveNotSupported) as err:
        open_pal(variant).local_report(bytes(512), b"")
    assert str(err.value) == message


def test_kill_not_supported(open_pal):
    with pytest.raises(EnclaveNotSupported) as err:
        open_pal("v1").kill(-1, signal.SIGTERM)
    assert str(err.value) == (
        "enclave runtime liberpal-v1.so: kill is not supported by this PAL (pal api version 1 has no pal_kill)"
    )
    rt = open_pal("v2-nokill")  # pal_kill is optional: it loads (the kit runs it, test_pal_conformance.py)
    with pytest.raises(EnclaveNotSupported) as err:
        rt.kill(-1, signal.SIGTERM)
    assert str(err.value) == (
        "enclave runtime liberpal-v2-nokill.so: kill is not supported by this PAL (it does not export pal_kill)"
    )


@pytest.mark.parametrize("variant", KILLABLE)
def test_destroy_ends_leftover_processes(open_pal, variant):
    rt = open_pal(variant)
    pid = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    rt.destroy()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
