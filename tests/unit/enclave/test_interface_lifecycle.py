"""The lifetime rules of enclave/interface.py, kept once (Lifecycle) for the PAL loader and the Python runtimes."""

from __future__ import annotations

import pytest

from inclavare.enclave.errors import EnclaveConfigError, EnclaveStateError
from inclavare.enclave.interface import Lifecycle


def test_loaded_initialized_destroyed():
    life = Lifecycle("rt")
    with pytest.raises(EnclaveStateError, match=r"^enclave runtime rt: wait called before init$"):
        life.require("wait")
    with pytest.raises(EnclaveConfigError, match=r"invalid log level 'loud'"):
        life.begin_init("loud")
    life.begin_init("info")
    life.initialized()
    life.require("wait")
    with pytest.raises(EnclaveStateError, match=r"^enclave runtime rt: init called when initialized$"):
        life.begin_init("info")
    assert life.destroy() is True  # an enclave to tear down
    with pytest.raises(EnclaveStateError, match=r"^enclave runtime rt: kill called after destroy$"):
        life.require("kill")
    with pytest.raises(EnclaveStateError, match=r"^enclave runtime rt: destroy called twice$"):
        life.destroy()
    with pytest.raises(EnclaveStateError, match=r"^enclave runtime rt: init called when destroyed$"):
        life.begin_init("info")


def test_destroy_before_init_has_nothing_to_tear_down():
    assert Lifecycle("rt").destroy() is False
