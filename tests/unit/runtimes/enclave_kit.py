"""Test helpers for the built-in runtimes: sample binaries, signed enclaves in a rootfs, stdio capture."""

from __future__ import annotations

import os
import subprocess
import threading

from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.enclave.identity import (
    HostKey,
    KeySigner,
    dump_manifest,
    expand_trusted_files,
    parse_manifest,
    sign_manifest,
    write_signature,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
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
