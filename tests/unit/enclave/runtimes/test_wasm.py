"""The wasm runtime in-process, through the EnclaveRuntime interface, with samples/wasm/hello.c."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import wasmtime
from enclave_kit import run, sample

from inclavare.enclave.errors import EnclaveConfigError, EnclaveNotSupported
from inclavare.enclave.runtimes.wasm import WasmRuntime
from inclavare.errors import EnclaveError

MODULE = "/app/hello.wasm"
ARGS = "manifest=/app/enclave.toml"


@pytest.fixture
def rt(make_runtime, wasm_enclave):
    runtime = make_runtime(WasmRuntime, wasm_enclave)
    runtime.init(ARGS, "info")
    return runtime


def test_fixed_argv_policy_ignores_the_container(make_runtime, enclave, capture, devnull):
    enclave.add_file(MODULE, sample("hello.wasm"))
    enclave.sign('runtime = "wasm"\n[argv]\nvalues = ["fixed", "exit=3"]\n[wasm]\nmodule = "/app/hello.wasm"\n')
    rt = make_runtime(WasmRuntime, enclave)
    rt.init(ARGS, "info")
    status, text = run(rt, ["hello", "exit=9"], capture, devnull)
    assert status == 3
    assert text.splitlines()[:2] == ["argv[0]=fixed", "argv[1]=exit=3"]


def test_preopened_directory_only(rt, capture, devnull):
    status, text = run(rt, ["hello", "read=/data/f.txt", "read=/etc/secret", "write=/data/new"], capture, devnull)
    assert status == 0
    assert "data file\n" in text
    assert "read /etc/secret: " in text
    assert "not preopened" not in text
    assert "write /data/new: " in text  # read-only preopen


def test_preopen_option_read_write(make_runtime, wasm_enclave, capture, devnull):
    wasm_enclave.mkdir("/scratch")
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(ARGS + " preopen=/scratch:rw", "info")
    status, text = run(rt, ["hello", "write=/scratch/out"], capture, devnull)
    assert status == 0
    assert "wrote /scratch/out" in text
    with open(wasm_enclave.host("/scratch/out")) as f:
        assert f.read() == "written\n"
    assert any("preopen=/scratch (rw) is not part of the measured identity" in line for line in rt.logs)


def test_cwd_inside_a_preopen_resolves_relative_paths(rt, wasm_enclave, capture, devnull, monkeypatch):
    monkeypatch.chdir(wasm_enclave.host("/srv/data"))
    status, text = run(rt, ["hello", "read=f.txt"], capture, devnull)
    assert status == 0
    assert "data file\n" in text


def test_memory_limit(make_runtime, wasm_enclave, capture, devnull):
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(ARGS, "info")  # memory_limit 16M = 256 pages
    assert "grew 8" in run(rt, ["hello", "grow=8"], capture, devnull)[1]
    assert "grow failed" in run(rt, ["hello", "grow=32"], capture, devnull)[1]
    low = make_runtime(WasmRuntime, wasm_enclave)
    low.init(ARGS + " memory=2M", "info")
    assert "grow failed" in run(low, ["hello", "grow=4"], capture, devnull)[1]


def test_options_cannot_raise_signed_limits(make_runtime, wasm_enclave):
    rt = make_runtime(WasmRuntime, wasm_enclave)
    with pytest.raises(EnclaveConfigError, match=r"memory=: 512 pages exceeds the manifest's signed limit of 256"):
        rt.init(ARGS + " memory=32M", "info")


def test_kill_a_spinning_module_promptly(rt, capture, devnull):
    out = capture()
    pid = rt.create_process(MODULE, ["hello", "spin"], [], (devnull, out.fd, out.fd))
    time.sleep(0.1)
    started = time.monotonic()
    rt.kill(pid, signal.SIGKILL)
    assert rt.wait(pid) == 128 + signal.SIGKILL
    latency = time.monotonic() - started
    assert latency < 0.5, f"kill took {latency:.3f} s"


def test_sleep_ends_normally(rt, capture, devnull):
    status, text = run(rt, ["hello", "sleep=0"], capture, devnull)
    assert status == 0
    assert "slept" in text


def test_signals_that_do_not_end_a_process(rt, capture, devnull):
    """Ignored by default (signal(7)) does nothing; stopping is refused (the kit covers the rest)."""
    out = capture()
    pid = rt.create_process(MODULE, ["hello", "spin"], [], (devnull, out.fd, out.fd))
    rt.kill(pid, signal.SIGCHLD)
    with pytest.raises(EnclaveNotSupported, match="cannot be stopped"):
        rt.kill(pid, signal.SIGSTOP)
    assert rt._procs[pid].wait_status(0.1) is None  # still running
    rt.kill(pid, signal.SIGKILL)
    assert rt.wait(pid) == 137


def test_concurrent_processes_are_independent(rt, capture, devnull):
    spin_out = capture("spin")
    spinner = rt.create_process(MODULE, ["hello", "spin"], [], (devnull, spin_out.fd, spin_out.fd))
    results = {}

    def worker(i):
        results[i] = run(rt, ["hello", f"exit={i}"], capture, devnull)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {1: 1, 2: 2, 3: 3}
    assert rt._procs[spinner].wait_status(0) is None  # untouched by the others
    rt.kill(spinner, signal.SIGKILL)
    assert rt.wait(spinner) == 137


def test_timeout_option(make_runtime, wasm_enclave, capture, devnull):
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(ARGS + " timeout=0.2", "info")
    started = time.monotonic()
    status, _ = run(rt, ["hello", "spin"], capture, devnull)
    assert status == 128 + signal.SIGXCPU
    assert 0.2 <= time.monotonic() - started < 2


def test_signed_fuel_budget(make_runtime, enclave, capture, devnull):
    enclave.add_file(MODULE, sample("hello.wasm"))
    enclave.sign('runtime = "wasm"\n[argv]\npolicy = "host"\n[wasm]\nmodule = "/app/hello.wasm"\nfuel = 5000000\n')
    rt = make_runtime(WasmRuntime, enclave)
    rt.init(ARGS, "info")
    assert run(rt, ["hello"], capture, devnull)[0] == 0
    assert run(rt, ["hello", "spin"], capture, devnull)[0] == 128 + signal.SIGXCPU
    assert any("fuel exhausted" in line for line in rt.logs)
    with pytest.raises(EnclaveConfigError, match="fuel="):
        make_runtime(WasmRuntime, enclave).init(ARGS + " fuel=6000000", "info")


def test_proc_exit_out_of_range_and_traps(make_runtime, enclave, capture, devnull):
    enclave.add_file(MODULE, sample("hello.wasm"))
    enclave.sign('runtime = "wasm"\n[argv]\npolicy = "host"\n[wasm]\nmodule = "/app/hello.wasm"\n')
    rt = make_runtime(WasmRuntime, enclave)
    rt.init(ARGS, "info")
    assert run(rt, ["hello", "exit=125"], capture, devnull)[0] == 125
    assert run(rt, ["hello", "exit=200"], capture, devnull)[0] == 1  # wasmtime refuses >= 126


def test_trap_is_134(make_runtime, enclave, capture, devnull):
    wat = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
    enclave.add(MODULE, wasmtime.wat2wasm(wat))
    enclave.sign('runtime = "wasm"\n[wasm]\nmodule = "/app/hello.wasm"\n')
    rt = make_runtime(WasmRuntime, enclave)
    rt.init(ARGS, "info")
    assert run(rt, ["hello"], capture, devnull)[0] == 134
    assert any("trap" in line and "unreachable" in line for line in rt.logs)


@pytest.mark.parametrize(
    ("wat", "message"),
    [
        ('(module (func (export "main")))', r"not a WASI command \(no _start export\)"),
        (
            '(module (import "env" "f" (func)) (func (export "_start")))',
            "imports from env; only wasi_snapshot_preview1",
        ),
    ],
)
def test_not_a_wasi_command(make_runtime, enclave, wat, message):
    enclave.add(MODULE, wasmtime.wat2wasm(wat))
    enclave.sign('runtime = "wasm"\n[wasm]\nmodule = "/app/hello.wasm"\n')
    with pytest.raises(EnclaveError, match=message):
        make_runtime(WasmRuntime, enclave).init(ARGS, "info")


# poll_oneoff (WASI preview 1): subscription 0 is a monotonic clock (userdata 9), subscription 1
# (only with NSUBS=2) is fd TAG (1 read, 2 write) on fd FD (userdata 7). Exits 50+errno on
# failure, else 10*nevents + the first event's userdata.
POLL_WAT = """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $r i32)
    (i64.store (i32.const 0) (i64.const 9))
    (i32.store8 (i32.const 8) (i32.const 0))          ;; tag: clock
    (i32.store (i32.const 16) (i32.const 1))          ;; monotonic
    (i64.store (i32.const 24) (i64.const TIMEOUT))    ;; relative, ns
    (i64.store (i32.const 48) (i64.const 7))
    (i32.store8 (i32.const 56) (i32.const TAG))
    (i32.store (i32.const 64) (i32.const FD))
    (local.set $r (call $poll (i32.const IN) (i32.const 200) (i32.const NSUBS) (i32.const 400)))
    (if (local.get $r) (then (call $exit (i32.add (i32.const 50) (local.get $r)))))
    (call $exit (i32.add (i32.mul (i32.load (i32.const 400)) (i32.const 10)) (i32.load (i32.const 200))))))
"""


@pytest.fixture
def poll_runtime(make_runtime, enclave):
    def make(timeout_ns: int, nsubs: int = 1, tag: int = 2, fd: int = 1, in_ptr: int = 0):
        wat = POLL_WAT
        for key, value in {"TIMEOUT": timeout_ns, "NSUBS": nsubs, "TAG": tag, "FD": fd, "IN": in_ptr}.items():
            wat = wat.replace(key, str(value))
        enclave.add(MODULE, wasmtime.wat2wasm(wat))
        enclave.sign('runtime = "wasm"\n[wasm]\nmodule = "/app/hello.wasm"\n')
        runtime = make_runtime(WasmRuntime, enclave)
        runtime.init(ARGS, "info")
        return runtime

    return make


@pytest.fixture
def full_pipe():
    """(r, w): a pipe whose buffer is full, so w is not writable."""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        while True:
            os.write(w, bytes(65536))
    except BlockingIOError:
        pass
    yield r, w
    os.close(r)
    os.close(w)


def test_poll_oneoff_clock(poll_runtime, devnull):
    rt = poll_runtime(50_000_000)
    started = time.monotonic()
    assert rt.wait(rt.create_process(MODULE, ["p"], [], (devnull, devnull, devnull))) == 19
    assert 0.05 <= time.monotonic() - started < 2


def test_poll_oneoff_writable_stdout(poll_runtime, devnull, capture):
    rt = poll_runtime(5_000_000_000, nsubs=2, tag=2, fd=1)
    out = capture()
    started = time.monotonic()
    assert rt.wait(rt.create_process(MODULE, ["p"], [], (devnull, out.fd, out.fd))) == 17
    assert time.monotonic() - started < 2


def test_poll_oneoff_full_stdout_is_not_writable(poll_runtime, devnull, full_pipe):
    rt = poll_runtime(100_000_000, nsubs=2, tag=2, fd=1)
    assert rt.wait(rt.create_process(MODULE, ["p"], [], (devnull, full_pipe[1], devnull))) == 19


def test_poll_oneoff_stdin_is_reported_readable(poll_runtime):
    rt = poll_runtime(5_000_000_000, nsubs=2, tag=1, fd=0)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        assert rt.wait(rt.create_process(MODULE, ["p"], [], (r, 1, 2))) == 17  # see _wasi_io: at once
    finally:
        os.close(r)
        os.close(w)


def test_poll_oneoff_kill(poll_runtime, devnull, full_pipe):
    rt = poll_runtime(60_000_000_000, nsubs=2, tag=2, fd=1)
    pid = rt.create_process(MODULE, ["p"], [], (devnull, full_pipe[1], devnull))
    time.sleep(0.1)
    started = time.monotonic()
    rt.kill(pid, signal.SIGKILL)
    assert rt.wait(pid) == 137
    assert time.monotonic() - started < 0.5


def test_poll_oneoff_bad_pointer(poll_runtime, devnull):
    rt = poll_runtime(1, in_ptr=65530)  # the subscriptions would run past linear memory
    assert rt.wait(rt.create_process(MODULE, ["p"], [], (devnull, 1, 2))) == 50 + 21  # ERRNO_FAULT


def test_blocked_writer_is_killed(rt, full_pipe):
    """A module blocked writing to a stdout nobody reads is still killed promptly."""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    pid = rt.create_process(MODULE, ["hello", "cat"], [], (r, full_pipe[1], full_pipe[1]))
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # feed cat until every buffer on the way is full
            try:
                os.write(w, bytes(65536))
            except BlockingIOError:
                time.sleep(0.01)
        assert rt._procs[pid].wait_status(0) is None
        started = time.monotonic()
        rt.kill(pid, signal.SIGTERM)
        assert rt.wait(pid) == 143
        assert time.monotonic() - started < 0.5
    finally:
        os.close(r)
        os.close(w)


def test_undeliverable_output_after_exit(rt, devnull, full_pipe):
    """The module exited by itself, its output cannot be delivered: wait waits, a kill ends the
    delivery, and the status stays the module's own."""
    pid = rt.create_process(MODULE, ["hello", "exit=3"], [], (devnull, full_pipe[1], devnull))
    assert rt._procs[pid].wait_status(0.3) is None  # argv lines pending for a full pipe
    rt.kill(pid, signal.SIGKILL)
    assert rt.wait(pid) == 3
