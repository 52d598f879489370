"""The native runtime in-process, through the EnclaveRuntime interface, with samples/native/hello.c."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from enclave_kit import SAMPLES, run

from inclavare.enclave.errors import EnclaveConfigError
from inclavare.enclave.identity import ManifestError, SignatureError
from inclavare.enclave.runtimes import _base
from inclavare.enclave.runtimes.native import NativeRuntime
from inclavare.errors import EnclaveError

PROGRAM = "/app/hello"
ARGS = "manifest=/app/enclave.toml"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switches to uid 65534")


@pytest.fixture
def rt(make_runtime, native_enclave):
    runtime = make_runtime(NativeRuntime, native_enclave)
    runtime.init(ARGS, "info")
    return runtime


def probe(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith(("argv", "env"))
    )


def test_sandbox_seen_from_inside(rt, capture, devnull):
    status, text = run(rt, ["hello", "probe"], capture, devnull)
    assert status == 0
    seen = probe(text)
    assert seen["dumpable"] == "0"  # a static payload, even as root
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"
    assert seen["ptrace"] == "EPERM"
    assert seen["vm_readv"] == "EPERM"
    assert seen["exe"] == "/memfd:hello (deleted)"  # the sealed copy, not a host file
    assert seen["rlimit_as"] == str(64 << 20)


def test_no_descriptor_leaks(rt, capture, devnull):
    stray = os.open("/dev/null", os.O_RDONLY)  # inheritable, as a careless caller's fd would be
    try:
        status, text = run(rt, ["hello", "fds"], capture, devnull)
    finally:
        os.close(stray)
    assert status == 0
    [line] = [line for line in text.splitlines() if line.startswith("fds")]
    assert sorted(line.split()[1:]) == ["0", "1", "2"]


def test_sigpipe_has_its_default_action(rt):
    r, w = os.pipe2(os.O_CLOEXEC)
    os.close(r)  # nobody reads: the payload's first write raises SIGPIPE (Python itself ignores it)
    try:
        assert rt.wait(rt.create_process(PROGRAM, ["hello"], [], (w, w, w))) == 128 + signal.SIGPIPE
    finally:
        os.close(w)


def test_memory_limit(make_runtime, native_enclave, capture, devnull):
    rt = make_runtime(NativeRuntime, native_enclave)
    rt.init(ARGS, "info")
    assert "alloc 8 (1)" in run(rt, ["hello", "alloc=8"], capture, devnull)[1]
    assert "alloc failed" in run(rt, ["hello", "alloc=100"], capture, devnull)[1]
    low = make_runtime(NativeRuntime, native_enclave)
    low.init(ARGS + " memory=32M", "info")
    assert probe(run(low, ["hello", "probe"], capture, devnull)[1])["rlimit_as"] == str(32 << 20)
    with pytest.raises(EnclaveConfigError, match="exceeds the manifest's signed limit of 67108864 bytes"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS + " memory=1G", "info")
    with pytest.raises(EnclaveConfigError, match=r"fuel=1: unknown option"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS + " fuel=1", "info")


def test_destroy_reaps_what_it_ends(rt, capture, devnull):
    """The kit checks that destroy ends processes; here, that none is left a zombie."""
    out = capture()
    pid = rt.create_process(PROGRAM, ["hello", "sleep=60"], [], (devnull, out.fd, out.fd))
    rt.destroy()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- what init refuses -------------------------------------------------------------
def test_tampered_trusted_file(make_runtime, native_enclave):
    native_enclave.add("/etc/app.conf", b"mode=debug\n", 0o644)
    with pytest.raises(ManifestError, match=r"trusted_files\[1\]\.sha256: mismatch for /etc/app\.conf$"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS, "info")


def test_tampered_entrypoint(make_runtime, native_enclave):
    with open(native_enclave.host(PROGRAM), "r+b") as f:
        f.seek(100)
        f.write(b"\xcc")
    with pytest.raises(ManifestError, match=r"trusted_files\[0\]\.sha256: mismatch for /app/hello$"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS, "info")


def test_entrypoint_swapped_after_verification(make_runtime, native_enclave, monkeypatch):
    """The copy that will run is hashed after copying: a swap after the identity check is caught."""
    real = _base.verify_signature

    def verify_then_swap(*args, **kw):
        identity = real(*args, **kw)
        shutil.copy("/bin/true", native_enclave.host(PROGRAM))
        return identity

    monkeypatch.setattr(_base, "verify_signature", verify_then_swap)
    with pytest.raises(ManifestError, match=r"trusted_files\[0\]\.sha256: mismatch for /app/hello$"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS, "info")


def test_tampered_manifest_and_wrong_signature(make_runtime, native_enclave):
    path = native_enclave.host("/app/enclave.toml")
    with open(path) as f:
        original = f.read()
    with open(path, "w") as f:
        f.write(original.replace("memory_limit = 67108864", "memory_limit = 1073741824"))
    with pytest.raises(SignatureError, match=r"enclave\.toml: manifest: measurement .* differs from the signed"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS, "info")
    with open(path, "w") as f:
        f.write(original.replace("isv_svn = 1", "isv_svn = 9"))  # not measured, but signed
    with pytest.raises(SignatureError, match=r"enclave\.toml: isv_svn: 9 differs from the signed 1"):
        make_runtime(NativeRuntime, native_enclave).init(ARGS, "info")


def test_script_entrypoint_is_refused(make_runtime, enclave):
    enclave.add(PROGRAM, b"#!/bin/sh\necho hi\n")
    enclave.sign('runtime = "native"\nentrypoint = "/app/hello"\ntrusted_files = ["/app/hello"]\n')
    with pytest.raises(EnclaveError, match="entrypoint /app/hello: not a 64-bit little-endian ELF executable"):
        make_runtime(NativeRuntime, enclave).init(ARGS, "info")


# -- as an unprivileged user, and a dynamic entrypoint -------------------------------
@pytest.fixture(scope="module")
def dynamic_hello(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("dyn") / "hello-dyn")
    subprocess.run(["cc", "-O2", "-o", path, os.path.join(SAMPLES, "native", "hello.c")], check=True, timeout=120)
    return path


def as_nobody(rt, argv, capture) -> tuple[int, str, dict[str, str]]:
    """create_process + wait in a child that is uid/gid 65534, as the init-runelet is after its drop.

    Also reads the payload's /proc files from there, as another process of the same user."""
    out = capture(f"nobody{time.monotonic_ns()}")
    os.chmod(out.path, 0o666)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = rt.create_process(PROGRAM, argv, [], (0, out.fd, out.fd))
            time.sleep(0.3)
            seen = []
            for name in ("mem", "environ"):
                try:
                    with open(f"/proc/{payload}/{name}", "rb"):
                        seen.append(f"{name}=open")
                except OSError as exc:
                    seen.append(f"{name}={exc.strerror}")
            rt.kill(payload, signal.SIGTERM)
            seen.append(f"status={rt.wait(payload)}")
            os.write(w, "\n".join(seen).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        result = dict(line.split("=", 1) for line in f.read().splitlines())
    os.waitpid(pid, 0)
    return int(result.pop("status")), out.text(), result


@needs_root
def test_unprivileged_static_payload_is_sealed(rt, capture):
    status, text, outside = as_nobody(rt, ["hello", "probe", "sleep=30"], capture)
    assert status == 143
    seen = probe(text)
    assert seen["uid"] == "65534"
    assert seen["dumpable"] == "0"
    assert seen["exe_read"] == "EACCES"  # execute-only: not even the payload can read its image
    assert outside == {"mem": "Permission denied", "environ": "Permission denied"}


@needs_root
def test_dynamic_entrypoint_runs_through_the_trampoline(make_runtime, enclave, dynamic_hello, capture, devnull):
    enclave.add_file(PROGRAM, dynamic_hello)
    enclave.sign('runtime = "native"\nentrypoint = "/app/hello"\ntrusted_files = ["/app/hello"]\n'
                 '[argv]\npolicy = "host"\n')  # fmt: skip
    rt = make_runtime(NativeRuntime, enclave)
    rt.init(ARGS, "info")
    assert any("dynamic (/lib64/ld-linux-x86-64.so.2, via rune-dmz)" in line for line in rt.logs)
    status, text = run(rt, ["hello", "probe", "exit=5"], capture, devnull)
    assert status == 5
    assert probe(text)["exe"] == "/memfd:hello (deleted)"
    assert probe(text)["Seccomp"] == "2"
    # As root the trampoline regains CAP_DAC_OVERRIDE and can read the copy: dumpable
    # (documented); as any other user the payload is not.
    assert probe(text)["dumpable"] == "1"
    _, text, outside = as_nobody(rt, ["hello", "probe", "sleep=30"], capture)
    assert probe(text)["dumpable"] == "0"
    assert outside["mem"] == "Permission denied"
