"""Checks of probe, the factory, init, destroy and the call order (interface.py, docs/pal-abi.md)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from functools import partial

from ...enclave.errors import EnclaveConfigError, EnclaveNotSupported, EnclaveStateError, EnclaveUnavailable
from ...enclave.interface import INTERFACE_VERSION, TEE_KINDS, Capabilities, EnclaveRuntime
from .harness import PROMPT, Kit, refused

TARGET_INFO = bytes(512)  # an SGX TARGETINFO's size; every runtime accepts it


def probe_shape(kit: Kit) -> None:
    """probe() returns exactly the Capabilities fields, typed, naming this runtime."""
    rt = kit.new()
    caps = rt.probe()
    hints = Capabilities.__annotations__  # the names (typing is not imported by interface.py at run time)
    assert set(caps) == set(hints), f"probe() keys {sorted(caps)}, expected {sorted(hints)}"
    for key in ("name", "source", "tee"):
        value = caps[key]
        assert isinstance(value, str), f"probe()[{key!r}] must be a string"
        assert value, f"probe()[{key!r}] must not be empty"
    for key, flag in (("can_kill", caps["can_kill"]), ("can_report", caps["can_report"])):
        assert isinstance(flag, bool), f"probe()[{key!r}] must be a bool"
    assert caps["name"] == rt.name, f"probe() name {caps['name']!r} is not the runtime's name {rt.name!r}"
    assert caps["tee"] == kit.subject.tee, f"probe() tee {caps['tee']!r}, created for {kit.subject.tee!r}"
    assert caps["kind"] in ("pal", "python"), f"probe() kind {caps['kind']!r}"
    if caps["kind"] == "python":
        assert caps["api_version"] == INTERFACE_VERSION, f"a python runtime reports api_version {INTERFACE_VERSION}"
    else:
        assert caps["api_version"] in (1, 2, 3), f"pal api_version {caps['api_version']!r}"
        assert not (caps["api_version"] == 1 and caps["can_kill"]), "pal api version 1 has no pal_kill"
        assert not (caps["api_version"] < 3 and caps["can_report"]), "local reports need pal api version 3"


def probe_is_stable(kit: Kit) -> None:
    """probe() is the same before init, after init and after destroy (no side effects, valid any time)."""
    rt = kit.new()
    before = rt.probe()
    assert rt.probe() == before
    rt.init(kit.subject.init_args, "info")
    assert rt.probe() == before, "probe() changed with init"
    rt.destroy()
    assert rt.probe() == before, "probe() changed with destroy"


def factory_tee(kit: Kit) -> None:
    """Every enclave.type either works (and probe says so) or is refused with EnclaveUnavailable; unknown
    types are refused with EnclaveConfigError."""
    for tee in TEE_KINDS:
        try:
            rt = kit.new(tee)
        except EnclaveUnavailable:
            refused(None, (EnclaveUnavailable,), kit.new, tee)  # and one line
            continue
        assert rt.probe()["tee"] == tee
    refused(None, (EnclaveConfigError, EnclaveUnavailable), kit.new, "noSuchTee")


def init_once(kit: Kit) -> None:
    """init works once; a second init is an EnclaveStateError."""
    rt = kit.ready()
    refused(rt.name, (EnclaveStateError,), rt.init, kit.subject.init_args, "info")


def init_bad_log_level(kit: Kit) -> None:
    """An unknown log level is refused (EnclaveConfigError) and leaves the runtime usable."""
    rt = kit.new()
    refused(rt.name, (EnclaveConfigError,), rt.init, kit.subject.init_args, "loud")
    rt.init(kit.subject.init_args, "debug")
    assert kit.run(rt, kit.subject.exits(0))[0] == 0


def init_pooled(kit: Kit) -> None:
    """A pooled enclave is adopted, or refused with EnclaveNotSupported leaving the runtime usable."""
    rt = kit.new()
    try:
        rt.init(kit.subject.init_args, "info", (kit.devnull(), 0x7F0000000000))
    except EnclaveNotSupported:
        refused(rt.name, (EnclaveNotSupported,), rt.init, kit.subject.init_args, "info", (kit.devnull(), 0x1000))
        rt.init(kit.subject.init_args, "info")
    assert kit.run(rt, kit.subject.exits(0))[0] == 0


def _calls(kit: Kit, rt: EnclaveRuntime, pid: int) -> dict[str, tuple[Callable[..., object], tuple[object, ...]]]:
    """Each process-level call with the arguments to make it with."""
    cmd = kit.subject.exits(0)
    stdio = (kit.devnull(), kit.output_file(), kit.output_file())
    return {
        "create_process": (rt.create_process, (cmd.path, cmd.argv, cmd.env, stdio)),
        "wait": (rt.wait, (pid,)),
        "kill": (rt.kill, (pid, 15)),
        "local_report": (rt.local_report, (TARGET_INFO, bytes(64))),
    }


def calls_before_init(kit: Kit) -> None:
    """create_process, wait, kill and local_report before init: EnclaveStateError."""
    rt = kit.new()
    for fn, args in _calls(kit, rt, 1).values():
        refused(rt.name, (EnclaveStateError,), fn, *args)


def calls_after_destroy(kit: Kit) -> None:
    """After destroy every call is an EnclaveStateError: init, a second destroy, create_process, and
    wait or kill of a process created before it."""
    rt = kit.ready()
    pid = kit.start(rt, kit.subject.exits(0))
    rt.destroy()
    refused(rt.name, (EnclaveStateError,), rt.init, kit.subject.init_args, "info")
    refused(rt.name, (EnclaveStateError,), rt.destroy)
    for fn, args in _calls(kit, rt, pid).values():
        refused(rt.name, (EnclaveStateError,), fn, *args)


def destroy_without_init(kit: Kit) -> None:
    """destroy of a runtime that was never initialised releases it (rune create can fail before init);
    init is refused afterwards."""
    rt = kit.new()
    rt.destroy()
    refused(rt.name, (EnclaveStateError,), rt.init, kit.subject.init_args, "info")
    refused(rt.name, (EnclaveStateError,), rt.destroy)


def destroy_ends_processes(kit: Kit) -> None:
    """destroy ends the processes still running — one blocked reading stdin, one ignoring SIGTERM —
    promptly, and the waits in progress return 128+SIGKILL."""
    rt = kit.ready()
    waiters = []
    running = [(kit.subject.copies_stdin(), b"ping\n"), (kit.subject.ignores_sigterm(), b"ready\n")]
    for cmd, line in running:
        if cmd is None:
            continue
        r_in, w_in = kit.pipe()
        r_out, w_out = kit.pipe()
        pid = rt.create_process(cmd.path, cmd.argv, cmd.env, (r_in, w_out, kit.output_file()))
        waiters.append(kit.background(partial(rt.wait, pid)))
        os.write(w_in, b"ping\n")
        # Runs (a runtime may start a process only in wait: PAL v1).
        assert kit.first_line(r_out) == line
    # A wait *in progress*: let the waiters reach the runtime (a wait that only
    # begins as destroy runs may instead be refused, as any call after destroy).
    time.sleep(0.05)
    started = time.monotonic()
    rt.destroy()
    took = time.monotonic() - started
    assert took < PROMPT, f"destroy took {took:.2f} s"
    assert [w.join("a wait in progress at destroy") for w in waiters] == [128 + signal.SIGKILL] * len(waiters)
