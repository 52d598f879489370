"""Fixtures for the built-in runtime tests: a signed hello.wasm / hello-native enclave, runtimes, stdio."""

from __future__ import annotations

import os

import pytest
from enclave_kit import HOST_KEY, NATIVE, WASM, BuiltinSubject, Capture, Enclave, WasmSubject, sample

from inclavare.enclave.runtimes.native import NativeRuntime
from inclavare.enclave.runtimes.wasm import WasmRuntime
from inclavare.testing.conformance import build_native, build_wasm

WASM_TEMPLATE = """\
runtime = "wasm"
memory_limit = "16M"
isv_prod_id = 4
isv_svn = 2
[argv]
policy = "host"
[env]
passthrough = ["GREETING"]
fixed = { MODE = "enclave" }
[wasm]
module = "/app/hello.wasm"
preopened_dirs = [{ guest = "/data", path = "/srv/data", read_only = true }]
"""


NATIVE_TEMPLATE = """\
runtime = "native"
entrypoint = "/app/hello"
memory_limit = "64M"
isv_prod_id = 5
isv_svn = 1
trusted_files = ["/app/hello", "/etc/app.conf"]
[argv]
policy = "host"
[env]
passthrough = ["GREETING"]
fixed = { MODE = "enclave" }
"""


@pytest.fixture
def enclave(tmp_path) -> Enclave:
    return Enclave(str(tmp_path / "rootfs"))


@pytest.fixture
def wasm_enclave(enclave) -> Enclave:
    """hello.wasm at /app, /srv/data/f.txt, and a signed manifest at /app/enclave.toml."""
    enclave.add_file("/app/hello.wasm", sample("hello.wasm"))
    enclave.add("/srv/data/f.txt", b"data file\n", 0o644)
    enclave.add("/etc/secret", b"not preopened\n", 0o644)
    enclave.sign(WASM_TEMPLATE)
    return enclave


@pytest.fixture
def native_enclave(enclave) -> Enclave:
    """hello-native at /app/hello, /etc/app.conf, and a signed manifest at /app/enclave.toml."""
    enclave.add_file("/app/hello", sample("hello-native"))
    enclave.add("/etc/app.conf", b"mode=prod\n", 0o644)
    enclave.sign(NATIVE_TEMPLATE)
    return enclave


@pytest.fixture
def make_runtime(tmp_path):
    """make_runtime(cls, enclave, **kw) -> an un-initialised runtime; destroyed at teardown."""
    made = []

    def make(cls, enclave: Enclave, **kw):
        kw.setdefault("host_key", HOST_KEY)
        if cls.name == "wasm":
            kw.setdefault("cache_dir", str(tmp_path / "cache"))
        logs: list[str] = []
        rt = cls(tee="software", log=logs.append, rootfs=enclave.rootfs, **kw)
        rt.logs = logs
        made.append(rt)
        return rt

    yield make
    for rt in made:
        if rt._life.state != "destroyed":
            rt.destroy()


@pytest.fixture
def capture(tmp_path):
    """capture(name, initial=b"") -> Capture with an O_APPEND fd; closed at teardown."""
    made = []

    def make(name: str = "out", initial: bytes = b"") -> Capture:
        c = Capture(str(tmp_path / f"{name}.txt"), initial)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def devnull():
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


@pytest.fixture(scope="session")
def wasm_subject(tmp_path_factory) -> WasmSubject:
    enclave = Enclave(str(tmp_path_factory.mktemp("wasm-kit") / "rootfs"))
    build_wasm(enclave.mkdir("/app") + "/conformance.wasm")
    enclave.sign(WASM)
    return WasmSubject(WasmRuntime, enclave.rootfs, "/app/conformance.wasm",
                       cache_dir=str(tmp_path_factory.mktemp("wasm-kit-cache")))  # fmt: skip


@pytest.fixture(scope="session")
def native_subject(tmp_path_factory) -> BuiltinSubject:
    enclave = Enclave(str(tmp_path_factory.mktemp("native-kit") / "rootfs"))
    build_native(enclave.mkdir("/app") + "/conformance")
    enclave.sign(NATIVE)
    return BuiltinSubject(NativeRuntime, enclave.rootfs, "/app/conformance")
