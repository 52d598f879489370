"""The built-in runtimes against the conformance kit (inclavare.testing.conformance);
their subjects are in enclave_kit.py, built once per session by conftest.py."""

from __future__ import annotations

import pytest

from inclavare.testing.conformance import RuntimeConformance


class TestWasm(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, wasm_subject):
        return wasm_subject


class TestNative(RuntimeConformance):
    @pytest.fixture
    def conformance_subject(self, native_subject):
        return native_subject
