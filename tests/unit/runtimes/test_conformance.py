"""The built-in runtimes against the conformance kit (inclavare.testing.conformance)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from enclave_kit import HOST_KEY, Enclave

from inclavare.attestation import software
from inclavare.enclave.identity import inspect_signature
from inclavare.enclave.interface import EnclaveRuntime
from inclavare.enclave.runtimes._base import RuntimeBase
from inclavare.enclave.runtimes.native import NativeRuntime
from inclavare.enclave.runtimes.wasm import WasmRuntime
from inclavare.testing.conformance import Command, RuntimeConformance, Subject, build_native, build_wasm
from inclavare.testing.conformance.processes import ENV

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
NATIVE = 'runtime = "native"\nmemory_limit = "64M"\nentrypoint = "/app/conformance"\ntrusted_files = ["/app/conformance"]\n' + POLICY  # fmt: skip


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
        assert (verified.product_id, verified.svn) == (7, 3)
        assert verified.report_data == report_data.ljust(64, b"\0")


class WasmSubject(BuiltinSubject):
    def ignores_sigterm(self) -> Command | None:
        return None  # WASI has no signals: any signal but the ignored-by-default ones ends a module

    def killed_by(self, sig: int) -> Command | None:
        return None


@pytest.fixture(scope="module")
def wasm_subject(tmp_path_factory) -> WasmSubject:
    enclave = Enclave(str(tmp_path_factory.mktemp("wasm-kit") / "rootfs"))
    build_wasm(enclave.mkdir("/app") + "/conformance.wasm")
    enclave.sign(WASM)
    return WasmSubject(WasmRuntime, enclave.rootfs, "/app/conformance.wasm",
                       cache_dir=str(tmp_path_factory.mktemp("wasm-kit-cache")))  # fmt: skip


@pytest.fixture(scope="module")
def native_subject(tmp_path_factory) -> BuiltinSubject:
    enclave = Enclave(str(tmp_path_factory.mktemp("native-kit") / "rootfs"))
    build_native(enclave.mkdir("/app") + "/conformance")
    enclave.sign(NATIVE)
    return BuiltinSubject(NativeRuntime, enclave.rootfs, "/app/conformance")


class TestWasm(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, wasm_subject):
        return wasm_subject


class TestNative(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, native_subject):
        return native_subject
