"""The fixture PALs against the conformance kit (inclavare.testing.conformance).

They are passthrough PALs (docs/pal-abi.md, "The fixture PALs"): the kit's
program, built as a static Linux executable, runs as a host process.
"""

from __future__ import annotations

import ctypes
import itertools
import os
from collections.abc import Callable, Sequence

import pytest

from inclavare.enclave.interface import EnclaveRuntime
from inclavare.enclave.pal import PalRuntime
from inclavare.testing.conformance import RuntimeConformance, Subject, build_native

MAGIC = b"inclavare fixture: FAKE report\0\0"


class PalSubject(Subject):
    tee = "intelSgx"
    binds_report_data = False  # pal_get_local_report has no report-data parameter (docs/pal-abi.md)

    def __init__(self, library: str, program: str) -> None:
        self.library, self.program = library, program

    def factory(self, *, tee: str, log: Callable[[str], None]) -> EnclaveRuntime:
        return PalRuntime(self.library, tee=tee, log=log)

    def check_report(self, report: bytes, target_info: bytes, report_data: bytes) -> None:
        assert report[:32] == MAGIC
        assert report[32:] == bytes(target_info[i % 512] ^ (i & 0xFF) for i in range(32, 432))


class PalV1Subject(PalSubject):
    def expected_env(self, env: Sequence[str]) -> list[str]:
        # v1's pal_exec has no env parameter: the program sees the caller's
        # environment, the C one (os.environ does not show what C code set).
        environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
        return [os.fsdecode(entry) for entry in itertools.takewhile(bool, environ)]


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> str:
    return build_native(str(tmp_path_factory.mktemp("pal-kit") / "conformance"))


@pytest.fixture(params=["v1", "v2", "v2-nokill", "v3"])
def conformance_subject(request, pal, program) -> PalSubject:
    cls = PalV1Subject if request.param == "v1" else PalSubject
    return cls(pal(request.param), program)


class TestFixturePal(RuntimeConformance):
    pass
