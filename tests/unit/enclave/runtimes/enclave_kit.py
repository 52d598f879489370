"""Test helpers for the built-in runtimes: sample binaries, signed enclaves in a rootfs, stdio capture,
and the runtimes as conformance-kit subjects."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.attestation import software
from inclavare.enclave.identity import (
    HostKey,
    KeySigner,
    dump_manifest,
    expand_trusted_files,
    inspect_signature,
    parse_manifest,
    sign_manifest,
    write_signature,
)
from inclavare.enclave.interface import EnclaveRuntime
from inclavare.enclave.runtimes._base import RuntimeBase
from inclavare.testing.conformance import Command, Subject
from inclavare.testing.conformance.processes import ENV

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SAMPLES = os.path.join(ROOT, "samples")
HOST_KEY = HostKey.from_seed(bytes(range(32)))
_build_lock = threading.Lock()


def sample(name: str) -> str:
    """samples/build/<name>, built with samples/Makefile when missing."""
    path = os.path.join(SAMPLES, "build", name)
    with _build_lock:
        if not os.path.exists(path):
            subprocess.run(["make", "-s", "-C", SAMPLES, f"build/{name}"], check=True, timeout=120)
    return path


def signer(seed: int = 1) -> KeySigner:
    return KeySigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


class Enclave:
    """A rootfs under construction, and signed manifests in it."""

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        os.makedirs(rootfs, exist_ok=True)

    def host(self, path: str) -> str:
        return os.path.join(self.rootfs, path.lstrip("/"))

    def add(self, path: str, data: bytes, mode: int = 0o755) -> str:
        host = self.host(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb") as f:
            f.write(data)
        os.chmod(host, mode)
        return host

    def add_file(self, path: str, source: str) -> str:
        with open(source, "rb") as f:
            return self.add(path, f.read())

    def mkdir(self, path: str) -> str:
        os.makedirs(self.host(path), exist_ok=True)
        return self.host(path)

    def sign(self, template: str, path: str = "/app/enclave.toml", key: KeySigner | None = None) -> str:
        """Expand `template` against the rootfs, write it at `path`, sign it; returns `path`."""
        host = self.host(path)
        manifest = expand_trusted_files(parse_manifest(template, host), self.rootfs)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "w") as f:
            f.write(dump_manifest(manifest))
        write_signature(sign_manifest(host, self.rootfs, key or signer()), host + ".sig")
        return path


def run(rt: RuntimeBase, argv: list[str], capture: Callable[[str], Capture], devnull: int,
        env: Sequence[str] = ()) -> tuple[int, str]:  # fmt: skip
    """Run the enclave's program with `argv` (stdout and stderr to one file): (status, output)."""
    assert rt.manifest is not None
    out = capture(f"out{time.monotonic_ns()}")
    status = rt.wait(rt.create_process(rt._program(rt.manifest), argv, list(env), (devnull, out.fd, out.fd)))
    return status, out.text()


class Capture:
    """An output file for a process's stdout/stderr; `text()` after the process ended."""

    def __init__(self, path: str, initial: bytes = b"") -> None:
        self.path = path
        with open(path, "wb") as f:
            f.write(initial)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def text(self) -> str:
        with open(self.path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self) -> None:
        os.close(self.fd)


# The manifests pass the kit's environment through and add one fixed entry,
# so env_exact also checks the manifest's env policy.
POLICY = f"""\
isv_prod_id = 7
isv_svn = 3
[argv]
policy = "host"
[env]
passthrough = {[entry.partition("=")[0] for entry in ENV]!r}
fixed = {{ MODE = "enclave" }}
"""
WASM = 'runtime = "wasm"\nmemory_limit = "16M"\n' + POLICY + '[wasm]\nmodule = "/app/conformance.wasm"\n'
NATIVE = (
    'runtime = "native"\nmemory_limit = "64M"\nentrypoint = "/app/conformance"\ntrusted_files = ["/app/conformance"]\n'
    + POLICY
)


class BuiltinSubject(Subject):
    init_args = "manifest=/app/enclave.toml"

    def __init__(self, cls: type[RuntimeBase], rootfs: str, program: str, **kw: str) -> None:
        self.cls, self.rootfs, self.program, self.kw = cls, rootfs, program, kw
        self.identity, _ = inspect_signature(f"{rootfs}/app/enclave.toml.sig")

    def factory(self, *, tee: str, log: Callable[[str], None]) -> EnclaveRuntime:
        return self.cls(tee=tee, log=log, rootfs=self.rootfs, host_key=HOST_KEY, **self.kw)  # type: ignore[call-arg]

    def expected_env(self, env: Sequence[str]) -> list[str]:
        return [*env, "MODE=enclave"]

    def check_report(self, report: bytes, target_info: bytes, report_data: bytes) -> None:
        verified = software.verify_report(report, [HOST_KEY.public_key])
        assert (verified.measurement, verified.signer) == (self.identity.measurement, self.identity.signer)
        assert (verified.product_id, verified.svn, verified.debug) == (7, 3, False)
        assert verified.report_data == report_data.ljust(64, b"\0")


class WasmSubject(BuiltinSubject):
    def ignores_sigterm(self) -> Command | None:
        return None  # WASI has no signals: any signal but the ignored-by-default ones ends a module

    def killed_by(self, sig: int) -> Command | None:
        return None
