"""What both built-in runtimes take from their signed manifest (runtimes/_base.py), with the samples:
registration, the argv and env policy, and only the measured program runs.

The interface itself (states, statuses, stdio, kill, reports) is checked by
the conformance kit, test_conformance.py."""

from __future__ import annotations

import pytest

from inclavare.enclave import registry
from inclavare.enclave.runtimes.native import NativeRuntime
from inclavare.enclave.runtimes.wasm import WasmRuntime
from inclavare.errors import EnclaveError


@pytest.fixture(params=[(WasmRuntime, "wasm_enclave", "/app/hello.wasm"),
                        (NativeRuntime, "native_enclave", "/app/hello")], ids=["wasm", "native"])  # fmt: skip
def sample(request, make_runtime):
    """(initialised runtime, its program) for the signed hello sample."""
    cls, enclave, program = request.param
    rt = make_runtime(cls, request.getfixturevalue(enclave))
    rt.init("manifest=/app/enclave.toml", "info")
    return rt, program


def test_registered_under_its_name(sample):
    rt, _ = sample
    assert registry.resolve(rt.name) is type(rt)
    assert rt.probe()["source"] == f"inclavare.enclave.runtimes.{rt.name}:{type(rt).__name__}"


def test_argv_and_env_policy(sample, capture, devnull):
    """argv policy "host": the container's; env: passthrough names from the container, then the fixed
    values, nothing else (no PATH, no LD_PRELOAD)."""
    rt, program = sample
    out = capture()
    env = ["GREETING=hi", "SECRET=leak", "PATH=/bin", "LD_PRELOAD=/evil.so"]
    pid = rt.create_process(program, ["hello", "one", "exit=7"], env, (devnull, out.fd, out.fd))
    assert rt.wait(pid) == 7
    lines = out.text().splitlines()
    assert lines[:3] == ["argv[0]=hello", "argv[1]=one", "argv[2]=exit=7"]
    assert [line for line in lines if line.startswith("env ")] == ["env GREETING=hi", "env MODE=enclave"]


def test_only_the_measured_program_runs(sample, devnull):
    rt, program = sample
    with pytest.raises(EnclaveError, match=f"/bin/sh is not the enclave's program {program}"):
        rt.create_process("/bin/sh", ["sh"], [], (devnull, 1, 2))
    with pytest.raises(EnclaveError, match="is not the enclave's program"):
        rt.create_process(program.lstrip("/"), ["hello"], [], (devnull, 1, 2))
