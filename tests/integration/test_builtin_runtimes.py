"""The built-in enclave runtimes (wasm, native) through the real rune and its init-runelet.

Bundles are the busybox rootfs plus samples/build/{hello.wasm,hello-native}
and a manifest signed against that rootfs, with the annotations
``enclave.type=software``, ``enclave.runtime.path=wasm|native``,
``enclave.runtime.args=manifest=/app/enclave.toml``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.attestation import software
from inclavare.enclave.identity import (
    DEFAULT_HOST_KEY,
    HostKey,
    KeySigner,
    dump_manifest,
    expand_trusted_files,
    inspect_signature,
    parse_manifest,
    sign_manifest,
    write_signature,
)
from inclavare.testing.bundles import base_config
from inclavare.testing.containers import status, wait_status

pytestmark = pytest.mark.root

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "samples")
MANIFEST = "/app/enclave.toml"
PROGRAMS = {"wasm": "/app/hello.wasm", "native": "/app/hello"}
TEMPLATES = {
    "wasm": 'runtime = "wasm"\n[argv]\npolicy = "host"\n[env]\npassthrough = ["TERM"]\n'
    '[wasm]\nmodule = "/app/hello.wasm"\n',
    "native": 'runtime = "native"\nentrypoint = "/app/hello"\nmemory_limit = "64M"\ntrusted_files = ["/app/hello"]\n'
    '[argv]\npolicy = "host"\n[env]\npassthrough = ["TERM"]\n',
}
BINARIES = {"wasm": "hello.wasm", "native": "hello-native"}


@pytest.fixture(scope="module")
def samples() -> str:
    subprocess.run(["make", "-s", "-C", SAMPLES], check=True, timeout=120)
    return os.path.join(SAMPLES, "build")


@pytest.fixture
def enclave_bundle(bundle, samples):
    """enclave_bundle(runtime, args) -> bundle dir whose rootfs holds the signed sample enclave."""

    def make(runtime: str, args: list[str], user: int = 0) -> str:
        cfg = base_config([PROGRAMS[runtime], *args])
        cfg["process"]["user"] = {"uid": user, "gid": user}
        cfg["annotations"] = {
            "enclave.type": "software",
            "enclave.runtime.path": runtime,
            "enclave.runtime.args": f"manifest={MANIFEST}",
        }
        b = bundle(cfg)
        rootfs = os.path.join(b, "rootfs")
        os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
        with open(os.path.join(samples, BINARIES[runtime]), "rb") as src:
            data = src.read()
        with open(os.path.join(rootfs, PROGRAMS[runtime].lstrip("/")), "wb") as dst:
            dst.write(data)
        os.chmod(os.path.join(rootfs, PROGRAMS[runtime].lstrip("/")), 0o755)
        manifest = os.path.join(rootfs, MANIFEST.lstrip("/"))
        with open(manifest, "w") as f:
            f.write(dump_manifest(expand_trusted_files(parse_manifest(TEMPLATES[runtime], manifest), rootfs)))
        key = KeySigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)))
        write_signature(sign_manifest(manifest, rootfs, key), manifest + ".sig")
        return b

    return make


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """rune's environment, with a private compiled-module cache (the init-runelet inherits it)."""
    return {**os.environ, "INCLAVARE_WASM_CACHE": str(tmp_path / "wasm-cache")}


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_run(rune, enclave_bundle, env, runtime):
    r = rune("run", "--bundle", enclave_bundle(runtime, ["one", "exit=3"]), f"run-{runtime}", env=env)
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines()[:2] == [f"argv[0]={PROGRAMS[runtime]}", "argv[1]=one"]
    assert "env TERM=xterm" in r.stdout
    assert "env PATH=" not in r.stdout  # the manifest passes TERM only


def test_native_sandbox_in_a_container(rune, enclave_bundle):
    r = rune("run", "--bundle", enclave_bundle("native", ["probe"], user=10), "probe")
    assert r.returncode == 0, r.stderr
    for line in ("dumpable=0", "NoNewPrivs=1", "Seccomp=2", "ptrace=EPERM", "vm_readv=EPERM",
                 "exe=/memfd:hello (deleted)", "exe_read=EACCES", f"rlimit_as={64 << 20}", "uid=10"):  # fmt: skip
        assert line in r.stdout.splitlines()


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_create_start_exec_kill_delete(rune, enclave_bundle, env, runtime, tmp_path):
    cid = f"life-{runtime}"
    b = enclave_bundle(runtime, ["sleep=60"])
    with open(tmp_path / "out", "w") as out:
        rune("create", "--bundle", b, cid, stdout=out, env=env, check=True)
    assert status(rune, cid) == "created"
    rune("start", cid, check=True)
    assert status(rune, cid) == "running"
    r = rune("exec", cid, PROGRAMS[runtime], "exec", "exit=9")
    assert r.returncode == 9, r.stderr
    assert r.stdout.splitlines()[:2] == [f"argv[0]={PROGRAMS[runtime]}", "argv[1]=exec"]
    r = rune("exec", cid, "/bin/sh", "-c", "true")
    assert r.returncode != 0
    assert f"/bin/sh is not the enclave's program {PROGRAMS[runtime]}" in r.stderr
    rune("kill", cid, "TERM", check=True)
    wait_status(rune, cid, "stopped")
    rune("delete", cid, check=True)
    assert status(rune, cid) == "gone"


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_term_ends_the_program_and_run_returns_its_status(rune, rune_fg, enclave_bundle, env, runtime):
    """TERM is forwarded to the program through the runtime's kill, and the
    program's end by that signal is the container's status, which `rune run`
    returns: 128+TERM (the init-runelet stopped by KILL would give 128+9)."""
    cid = f"term-{runtime}"
    fg = rune_fg("run", "--bundle", enclave_bundle(runtime, ["sleep=60"]), cid, env=env, stdout=subprocess.DEVNULL)
    wait_status(rune, cid, "running")
    rune("kill", cid, "TERM", check=True)
    assert fg.wait(timeout=10) == 128 + signal.SIGTERM


def test_kill_a_spinning_wasm_module(rune, rune_fg, enclave_bundle, env):
    fg = rune_fg("run", "--bundle", enclave_bundle("wasm", ["spin"]), "spin", env=env, stdout=subprocess.DEVNULL)
    wait_status(rune, "spin", "running")
    time.sleep(0.2)
    assert status(rune, "spin") == "running"
    killed = time.monotonic()
    rune("kill", "spin", "KILL", check=True)
    assert fg.wait(timeout=5) == 128 + signal.SIGKILL
    assert time.monotonic() - killed < 2


def test_compiled_module_cache_is_used(rune, enclave_bundle, env, tmp_path):
    b = enclave_bundle("wasm", ["exit=0"])
    assert rune("run", "--bundle", b, "cache1", env=env).returncode == 0
    entries = os.listdir(tmp_path / "wasm-cache")
    assert len(entries) == 1
    assert entries[0].endswith(".cwasm")
    assert rune("run", "--bundle", b, "cache2", env=env).returncode == 0
    assert os.listdir(tmp_path / "wasm-cache") == entries


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_tampered_enclave_fails_create(rune, enclave_bundle, env, runtime, state_root):
    b = enclave_bundle(runtime, [])
    with open(os.path.join(b, "rootfs", PROGRAMS[runtime].lstrip("/")), "ab") as f:
        f.write(b"\0")
    r = rune("create", "--bundle", b, "tampered", env=env)
    assert r.returncode == 1
    field = "wasm.module_sha256" if runtime == "wasm" else "trusted_files[0].sha256"
    assert f"{MANIFEST}: {field}: mismatch for {PROGRAMS[runtime]}" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(state_root, "tampered"))


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_attest(rune, enclave_bundle, env, runtime, tmp_path):
    b = enclave_bundle(runtime, ["sleep=60"])
    cid = f"att-{runtime}"
    rune("run", "-d", "--bundle", b, cid, env=env, check=True)
    report = tmp_path / "report.bin"
    rune("attest", "--reportFile", str(report), cid, check=True)
    evidence = software.verify_report(report.read_bytes(), [HostKey.load_or_create(DEFAULT_HOST_KEY).public_key])
    identity, _ = inspect_signature(os.path.join(b, "rootfs", MANIFEST.lstrip("/")) + ".sig")
    assert evidence.measurement == identity.measurement
    assert evidence.signer == identity.signer
    assert evidence.software
