"""wasm runtime: what init refuses (tampering, wrong signer, bad options) and the compiled-module cache."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import wasmtime
from enclave_kit import HOST_KEY, sample, signer

from inclavare.enclave.errors import EnclaveConfigError
from inclavare.enclave.identity import ManifestError, SignatureError, inspect_signature
from inclavare.enclave.runtimes import _base
from inclavare.enclave.runtimes.wasm import WasmRuntime
from inclavare.errors import EnclaveError

ARGS = "manifest=/app/enclave.toml"


def test_tampered_module_is_refused(make_runtime, wasm_enclave):
    with open(wasm_enclave.host("/app/hello.wasm"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match=r"enclave.toml: wasm.module_sha256: mismatch for /app/hello.wasm$"):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


def test_tampered_manifest_is_refused(make_runtime, wasm_enclave):
    path = wasm_enclave.host("/app/enclave.toml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('passthrough = ["GREETING"]', 'passthrough = ["GREETING", "LD_PRELOAD"]'))
    with pytest.raises(SignatureError, match=r"enclave.toml: manifest: measurement [0-9a-f]+ differs from the signed"):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


def test_signature_of_another_manifest_is_refused(make_runtime, wasm_enclave):
    other = wasm_enclave.sign('runtime = "wasm"\n[wasm]\nmodule = "/app/hello.wasm"\n', "/app/other.toml")
    os.replace(wasm_enclave.host(other + ".sig"), wasm_enclave.host("/app/enclave.toml.sig"))
    with pytest.raises(SignatureError, match=r"manifest: measurement .* differs from the signed"):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


def test_corrupt_signature_is_refused(make_runtime, wasm_enclave):
    path = wasm_enclave.host("/app/enclave.toml.sig")
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[-1] ^= 1  # the last byte is inside the signature value
    with open(path, "wb") as f:
        f.write(raw)
    with pytest.raises(SignatureError, match=r"enclave.toml.sig: "):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


def test_expected_signer(make_runtime, wasm_enclave):
    identity, _ = inspect_signature(wasm_enclave.host("/app/enclave.toml.sig"))
    make_runtime(WasmRuntime, wasm_enclave).init(f"{ARGS} signer={identity.signer.hex()}", "info")
    wrong = hashlib.sha256(signer(2).public_key_der()).hexdigest()
    with pytest.raises(SignatureError, match=f"signer: {identity.signer.hex()} is not the expected {wrong}"):
        make_runtime(WasmRuntime, wasm_enclave).init(f"{ARGS} signer={wrong}", "info")


def test_missing_signature_names_the_file(make_runtime, wasm_enclave):
    with pytest.raises(SignatureError, match=r"/app/none.sig: No such file or directory"):
        make_runtime(WasmRuntime, wasm_enclave).init(f"{ARGS} sig=/app/none.sig", "info")


def test_manifest_of_the_other_runtime(make_runtime, enclave):
    enclave.add("/bin/app", b"\x7fELF")
    enclave.sign('runtime = "native"\nentrypoint = "/bin/app"\ntrusted_files = ["/bin/app"]\n')
    with pytest.raises(ManifestError, match='runtime: is "native": this is the wasm runtime'):
        make_runtime(WasmRuntime, enclave).init(ARGS, "info")


def test_module_swapped_after_verification(make_runtime, wasm_enclave, monkeypatch):
    """The module is read once, after verification, and hashed again: a swap in between is caught."""
    real = _base.verify_signature

    def verify_then_swap(*args, **kw):
        identity = real(*args, **kw)
        wasm_enclave.add("/app/hello.wasm", wasmtime.wat2wasm('(module (func (export "_start")))'))
        return identity

    monkeypatch.setattr(_base, "verify_signature", verify_then_swap)
    with pytest.raises(ManifestError, match=r"wasm\.module_sha256: mismatch for /app/hello\.wasm"):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


def test_manifest_swapped_after_verification(make_runtime, wasm_enclave, monkeypatch):
    real = _base.verify_signature
    path = wasm_enclave.host("/app/enclave.toml")

    def verify_then_swap(*args, **kw):
        identity = real(*args, **kw)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("max_memory_pages = 256", "max_memory_pages = 200"))
        return identity

    monkeypatch.setattr(_base, "verify_signature", verify_then_swap)
    with pytest.raises(SignatureError, match="manifest: changed while it was being verified"):
        make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "enclave.runtime.args: manifest=: is required"),
        (f"{ARGS} colour=red", r"colour=red: unknown option \(known: cache=, fuel=, manifest="),
        (f"{ARGS} {ARGS}", "manifest= is given twice"),
        ("manifest=app.toml", "must be an absolute path in the container's rootfs"),
        (f"{ARGS} memory=lots", "memory=lots: must be a positive size"),
        (f"{ARGS} memory=100", "memory=100: is less than one 64 KiB wasm page"),
        (f"{ARGS} timeout=-1", "must be a positive number of seconds"),
        (f"{ARGS} timeout=nan", "must be a positive number of seconds"),
        (f"{ARGS} fuel=0", "fuel=0: must be a positive integer"),
        (f"{ARGS} signer=abc", "must be 64 hex digits"),
        (f"{ARGS} cache=maybe", "must be on or off"),
        (f"{ARGS} preopen=/srv/data:wx", "must be ro or rw"),
        (f"{ARGS} preopen=/data", "the manifest already preopens this directory"),
    ],
)
def test_bad_options(make_runtime, wasm_enclave, args, message):
    with pytest.raises(EnclaveConfigError, match=message):
        make_runtime(WasmRuntime, wasm_enclave).init(args, "info")


def test_missing_preopen_directory(make_runtime, wasm_enclave):
    with pytest.raises(EnclaveError, match="preopened directory /nowhere: /nowhere is not a directory"):
        make_runtime(WasmRuntime, wasm_enclave).init(f"{ARGS} preopen=/nowhere", "info")


def test_module_larger_than_the_memory_limit(make_runtime, enclave, devnull):
    enclave.add(
        "/app/hello.wasm", wasmtime.wat2wasm('(module (memory (export "memory") 300) (func (export "_start")))')
    )
    enclave.sign('runtime = "wasm"\n[wasm]\nmodule = "/app/hello.wasm"\nmax_memory_pages = 256\n')
    rt = make_runtime(WasmRuntime, enclave)
    rt.init(ARGS, "info")
    with pytest.raises(EnclaveError, match=r"cannot start /app/hello\.wasm: .*memory"):
        rt.create_process("/app/hello.wasm", ["x"], [], (devnull, 1, 2))
    assert rt._procs == {}


# -- the compiled-module cache ---------------------------------------------------
def cache_files(tmp_path) -> list[str]:
    return sorted(n for n in os.listdir(tmp_path / "cache") if n.endswith(".cwasm"))


def timed_init(rt, args=ARGS) -> float:
    started = time.perf_counter()
    rt.init(args, "info")
    return time.perf_counter() - started


def test_second_start_skips_compilation(make_runtime, wasm_enclave, tmp_path, capture, devnull):
    cold = make_runtime(WasmRuntime, wasm_enclave)
    cold_time = timed_init(cold)
    assert not cold.cache_hit
    [name] = cache_files(tmp_path)
    assert os.stat(tmp_path / "cache" / name).st_mode & 0o777 == 0o600
    warm = make_runtime(WasmRuntime, wasm_enclave)
    warm_time = timed_init(warm)
    assert warm.cache_hit
    assert any("compiled-module cache hit" in line for line in warm.logs)
    assert not any("compiled /app/hello.wasm" in line for line in warm.logs)
    out = capture()
    assert warm.wait(warm.create_process("/app/hello.wasm", ["h", "exit=5"], [], (devnull, out.fd, out.fd))) == 5
    print(f"wasm init: cold {cold_time * 1000:.1f} ms, cached {warm_time * 1000:.1f} ms")


def test_engine_settings_are_part_of_the_key(make_runtime, wasm_enclave, tmp_path):
    make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")
    make_runtime(WasmRuntime, wasm_enclave).init(f"{ARGS} fuel=1000", "info")  # fuel changes the code
    assert len(cache_files(tmp_path)) == 2


def test_cache_off(make_runtime, wasm_enclave, tmp_path):
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(f"{ARGS} cache=off", "info")
    assert not rt.cache_hit
    assert cache_files(tmp_path) == []


def test_corrupt_cache_entry_is_recompiled(make_runtime, wasm_enclave, tmp_path, capture, devnull):
    make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info")
    [name] = cache_files(tmp_path)
    path = tmp_path / "cache" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(ARGS, "info")
    assert not rt.cache_hit
    assert any(f"cache entry {name} ignored: corrupt" in line for line in rt.logs)
    out = capture()
    assert rt.wait(rt.create_process("/app/hello.wasm", ["h"], [], (devnull, out.fd, out.fd))) == 0
    assert make_runtime(WasmRuntime, wasm_enclave).init(ARGS, "info") is None
    assert path.read_bytes() != bytes(data)  # rewritten


def test_unsafe_cache_directory_is_not_used(make_runtime, wasm_enclave, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    rt = make_runtime(WasmRuntime, wasm_enclave, cache_dir=str(shared))
    rt.init(ARGS, "info")
    assert any("off: not owned by uid" in line for line in rt.logs)
    assert os.listdir(shared) == []


def test_cache_directory_from_the_environment(make_runtime, wasm_enclave, tmp_path, monkeypatch):
    monkeypatch.setenv("INCLAVARE_WASM_CACHE", str(tmp_path / "from-env"))
    rt = WasmRuntime(tee="software", rootfs=wasm_enclave.rootfs, host_key=HOST_KEY)
    try:
        rt.init(ARGS, "info")
        assert len(os.listdir(tmp_path / "from-env")) == 1
    finally:
        rt.destroy()


def test_sample_builds():
    """samples/Makefile builds both samples (CI calls it from make setup)."""
    with open(sample("hello.wasm"), "rb") as f:
        assert f.read(4) == b"\0asm"
    with open(sample("hello-native"), "rb") as f:
        assert f.read(4) == b"\x7fELF"
