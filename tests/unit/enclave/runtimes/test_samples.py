"""samples/: the Makefile builds both programs and installs them, with their manifests, into a rootfs."""

from __future__ import annotations

import os
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from enclave_kit import ROOT, SAMPLES, sample

from inclavare.enclave.runtimes.native import NativeRuntime
from inclavare.enclave.runtimes.wasm import WasmRuntime

INCLAVARE = os.path.join(ROOT, ".venv", "bin", "inclavare")


@pytest.mark.skipif(not os.path.exists(INCLAVARE), reason="needs the project's venv (make setup)")
@pytest.mark.parametrize(("kind", "cls", "program"), [("wasm", WasmRuntime, "/app/hello.wasm"),
                                                      ("native", NativeRuntime, "/app/hello")])  # fmt: skip
def test_install_and_run(tmp_path, make_runtime, enclave, capture, devnull, kind, cls, program):
    sample("hello.wasm" if kind == "wasm" else "hello-native")
    key = tmp_path / "key.pem"
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key.write_bytes(pem)
    subprocess.run(
        ["make", "-s", "-C", SAMPLES, f"install-{kind}", f"ROOTFS={enclave.rootfs}", f"KEY={key}"],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    rt = make_runtime(cls, enclave)
    rt.init(f"manifest=/app/hello-{kind}.toml", "info")
    out = capture()
    pid = rt.create_process(program, ["hello", "exit=6"], ["GREETING=hello", "OTHER=x"], (devnull, out.fd, out.fd))
    assert rt.wait(pid) == 6
    assert "env GREETING=hello\nenv MODE=enclave\n" in out.text()
