"""Every call of every PAL API version, in process, through the fixture PALs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time

import pytest

from inclavare.enclave.errors import EnclaveError, EnclaveNotSupported, EnclaveStateError, PalCallFailed
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
        if rt._state != "destroyed":
            rt.destroy()


def run(rt: PalRuntime, argv: list[str], env: list[str] = (), stdin: bytes | None = None) -> tuple[int, bytes]:
    """Run argv through the runtime with stdout on a pipe: (exit status, stdout)."""
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    if stdin is not None:
        os.write(in_w, stdin)
    os.close(in_w)
    try:
        pid = rt.create_process(argv[0], argv, list(env), (in_r, out_w, 2))
        status = rt.wait(pid)
    finally:
        os.close(out_w)
        os.close(in_r)
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


@pytest.mark.parametrize("variant", ALL)
def test_echo_stdout_arrives_with_arguments_intact(open_pal, variant):
    rt = open_pal(variant)
    assert run(rt, ["/bin/echo", "hello", "two words"]) == (0, b"hello two words\n")


@pytest.mark.parametrize("variant", ALL)
def test_exit_codes_and_stdin(open_pal, variant):
    rt = open_pal(variant)
    assert run(rt, ["/bin/sh", "-c", "exit 7"])[0] == 7
    assert run(rt, ["/bin/cat"], stdin=b"through stdin") == (0, b"through stdin")
    assert run(rt, ["/bin/sh", "-c", "kill -TERM $$"])[0] == 128 + signal.SIGTERM


@pytest.mark.parametrize("variant", KILLABLE)
def test_env_is_the_programs_whole_environment(open_pal, variant):
    rt = open_pal(variant)
    assert run(rt, ["/usr/bin/env"], ["A=1", "B=two words"]) == (0, b"A=1\nB=two words\n")


def test_v1_has_no_env_parameter_so_the_callers_environment_is_seen(open_pal, monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "yes")
    status, out = run(open_pal("v1"), ["/usr/bin/env"], ["IGNORED=1"])
    assert status == 0
    assert b"FROM_CALLER=yes\n" in out
    assert b"IGNORED" not in out


@pytest.mark.parametrize("variant", KILLABLE)
def test_kill_one_latest_and_all(open_pal, variant):
    rt = open_pal(variant)
    first = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    rt.kill(first, signal.SIGTERM)
    assert rt.wait(first) == 128 + signal.SIGTERM
    a = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    b = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    rt.kill(0, signal.SIGINT)  # pid 0: the process created last
    assert rt.wait(b) == 128 + signal.SIGINT
    rt.kill(-1, signal.SIGKILL)  # pid -1: all
    assert rt.wait(a) == 128 + signal.SIGKILL


@pytest.mark.parametrize("variant", KILLABLE)
def test_wait_in_a_worker_while_the_main_thread_kills(open_pal, variant):
    """The init-runelet's pattern: wait blocks in a worker, kill comes from main."""
    rt = open_pal(variant)
    pid = rt.create_process("/bin/sleep", ["sleep", "30"], [], (0, 1, 2))
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(rt.wait(pid)))
    worker.start()
    time.sleep(0.05)
    assert worker.is_alive()  # wait really blocks, without holding the GIL
    rt.kill(-1, signal.SIGTERM)
    worker.join(5)
    assert result == [128 + signal.SIGTERM]


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


def test_local_report_is_the_fixtures_deterministic_fake(open_pal):
    rt = open_pal("v3")
    target_info = bytes((i * 7 + 3) % 256 for i in range(512))
    report = rt.local_report(target_info, bytes(64))
    assert len(report) == 432
    assert report[:32] == b"inclavare fixture: FAKE report\0\0"
    assert report[32:] == bytes(target_info[i % 512] ^ (i & 0xFF) for i in range(32, 432))
    assert rt.local_report(target_info, b"") == report


def test_local_report_input_checks(open_pal):
    rt = open_pal("v3")
    with pytest.raises(EnclaveError, match=r"target info must be 512 bytes, got 511$"):
        rt.local_report(bytes(511), b"")
    with pytest.raises(EnclaveNotSupported, match=r"cannot bind report data \(it is always zero\)$"):
        rt.local_report(bytes(512), b"\x01")


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
    rt = open_pal("v2-nokill")  # pal_kill is optional: loading and running still work
    assert rt.probe()["can_kill"] is False
    assert run(rt, ["/bin/echo", "ok"]) == (0, b"ok\n")
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


@pytest.mark.parametrize("variant", ALL)
def test_calls_out_of_order(pal, variant):
    rt = PalRuntime(pal(variant))
    name = re.escape(f"enclave runtime liberpal-{variant}.so")
    with pytest.raises(EnclaveStateError, match=f"^{name}: create_process called before init$"):
        rt.create_process("/bin/true", ["true"], [], (0, 1, 2))
    rt.init("", "info")
    with pytest.raises(EnclaveStateError, match=f"^{name}: init called when initialized$"):
        rt.init("", "info")
    with pytest.raises(EnclaveStateError, match=f"^{name}: no process 12345 to wait for$"):
        rt.wait(12345)
    pid = rt.create_process("/bin/true", ["true"], [], (0, 1, 2))
    assert rt.wait(pid) == 0
    with pytest.raises(EnclaveStateError, match=f"^{name}: no process {pid} to wait for$"):
        rt.wait(pid)  # each process is waited for once
    rt.destroy()
    with pytest.raises(EnclaveStateError, match=f"^{name}: wait called after destroy$"):
        rt.wait(pid)
    with pytest.raises(EnclaveStateError, match=f"^{name}: destroy called twice$"):
        rt.destroy()


def test_destroy_without_init_is_a_no_op(pal, init_record):
    rt = PalRuntime(pal("v2"))
    rt.destroy()
    with pytest.raises(EnclaveStateError, match=r"init called when destroyed$"):
        rt.init("", "info")


def test_bad_arguments(open_pal):
    rt = open_pal("v2")
    with pytest.raises(EnclaveError, match=r"^enclave runtime liberpal-v2\.so: 'a\\x00b' contains a NUL byte$"):
        rt.create_process("/bin/echo", ["echo", "a\0b"], [], (0, 1, 2))
    with pytest.raises(EnclaveError, match=r"create_process needs argv\[0\]$"):
        rt.create_process("/bin/echo", [], [], (0, 1, 2))
    with pytest.raises(EnclaveError, match=r"invalid signal 65$"):
        rt.kill(-1, 65)
