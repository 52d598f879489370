"""Which carrier a container asks for, and what each one makes of its workload.

Chosen as in the original shim: ``RUNE_CARRIER`` in ``process.env``, or the
annotation ``enclave.carrier`` (the variable wins when it is not empty, like
every enclave setting: enclave/config.py). Absent or empty means the empty
carrier: nothing to do, the bundle goes to rune as it is.

=========  ===============================================================
carrier    makes an enclave of
=========  ===============================================================
``wasm``   an image whose entrypoint is a WebAssembly (WASI preview 1)
           module: the built-in ``wasm`` runtime (docs/builtin-runtimes.md)
``native`` an image whose entrypoint is a static ELF program: the built-in
           ``native`` runtime
=========  ===============================================================

``occlum`` and ``graphene`` are refused by name: the Occlum toolchain
(``occlum build``, ``sgx_sign``) needs SGX hardware and Occlum's SDK, which
these nodes do not have, and a carrier that pretended would run the image
unprotected. Any other name is refused too; nothing falls back to a plain
container. Near-misses of ``RUNE_CARRIER`` (``rune_carrier``,
``RUNE-CARRIER``, ``RUNE_CARIER``) are refused with the right spelling:
rune's own checks cover only names under ``enclave``/``ENCLAVE_``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..enclave.config import Settings
from ..enclave.identity.manifest import WASM_PAGE, Manifest, PreopenedDir, TrustedFile, WasmSettings
from ..enclave.names import CARRIER_ANNOTATION, CARRIER_VARIABLE, looks_like_carrier
from . import programs
from .errors import CarrierError
from .workload import Workload

VARIABLE = CARRIER_VARIABLE
ANNOTATION = CARRIER_ANNOTATION
UNAVAILABLE = {
    "occlum": "the Occlum toolchain (occlum build, sgx_sign, an SGX device) is not available on this node",
    "graphene": "Carrier graphene has not been implemented",  # the original's own words
}


class Carrier:
    """One kind of enclave a plain image can be turned into."""

    name: ClassVar[str]  # also the built-in runtime's name (enclave.runtime.path)

    def check_program(self, rootfs: str, program: str) -> None:
        raise NotImplementedError

    def manifest(self, workload: Workload, file: str) -> Manifest:
        """The manifest template (hashes not yet pinned) for `workload`."""
        raise NotImplementedError

    @staticmethod
    def _common(workload: Workload, file: str) -> dict[str, Any]:
        return {"file": file, "memory_limit": workload.memory_limit, "isv_prod_id": 0, "isv_svn": 0,
                "debug": False, "argv_policy": "fixed", "argv": workload.args, "env_fixed": workload.env_fixed,
                "env_passthrough": workload.env_passthrough, "allowed_files": ()}  # fmt: skip


class WasmCarrier(Carrier):
    name = "wasm"

    def check_program(self, rootfs: str, program: str) -> None:
        programs.check_wasm(rootfs, program, "config.json: process.args[0]")

    def manifest(self, workload: Workload, file: str) -> Manifest:
        if workload.memory_limit < WASM_PAGE:
            raise CarrierError("config.json: linux.resources.memory.limit",
                               f"{workload.memory_limit} bytes is less than one 64 KiB WebAssembly page")  # fmt: skip
        secrets = workload.secrets_dir
        wasm = WasmSettings(
            module=workload.program,
            module_sha256=None,
            max_memory_pages=min(65536, workload.memory_limit // WASM_PAGE),
            fuel=None,
            epoch_deadline=None,
            # The module sees no file system but the provisioned secrets, read-only (measured).
            preopened_dirs=(PreopenedDir(secrets, secrets, True),) if secrets else (),
        )
        return Manifest(runtime="wasm", entrypoint=None, trusted_files=(), wasm=wasm, **self._common(workload, file))


class NativeCarrier(Carrier):
    name = "native"

    def check_program(self, rootfs: str, program: str) -> None:
        programs.check_static_elf(rootfs, program, "config.json: process.args[0]")

    def manifest(self, workload: Workload, file: str) -> Manifest:
        files = (TrustedFile(workload.program, None),)
        return Manifest(runtime="native", entrypoint=workload.program, trusted_files=files, wasm=None,
                        **self._common(workload, file))  # fmt: skip


CARRIERS: dict[str, type[Carrier]] = {c.name: c for c in (WasmCarrier, NativeCarrier)}


@dataclasses.dataclass(frozen=True)
class Choice:
    carrier: Carrier | None  # None: the empty carrier
    source: str  # "process.env RUNE_CARRIER" or "annotations.enclave.carrier"; "" for the empty carrier


def choose(settings: Settings, env: list[str], annotations: dict[str, str]) -> Choice:
    """The carrier a container asks for; refuses unknown names and misspellings."""
    _refuse_near_misses(env, annotations)
    if "carrier" not in settings.found:
        return Choice(None, "")
    name, source = settings.found["carrier"]
    if name in UNAVAILABLE:
        raise CarrierError(source, f"carrier {name}: {UNAVAILABLE[name]}")
    if name not in CARRIERS:
        raise CarrierError(source, f"unknown carrier {name!r} (known: {', '.join(CARRIERS)}; empty for none)")
    return Choice(CARRIERS[name](), source)


def _refuse_near_misses(env: list[str], annotations: dict[str, str]) -> None:
    for entry in env:
        name = entry.partition("=")[0]
        if name != VARIABLE and looks_like_carrier(name):
            raise CarrierError(f"process.env {name}", f"not a carrier setting: did you mean {VARIABLE}?")
    for key in annotations:
        if looks_like_carrier(key):
            raise CarrierError(f"annotations.{key}", f"not a carrier setting: did you mean {ANNOTATION} "
                               f"(or {VARIABLE} in the environment)?")  # fmt: skip
