"""Enclave unit-test fixtures (the PAL builders `pal` and `cc` live in tests/conftest.py)."""

from __future__ import annotations

import ctypes
import os

import pytest


@pytest.fixture(scope="session")
def init_record():
    """init_record(path) -> what that fixture PAL's last pal_init received.

    A test hook, not PAL API. dlopen of a path already loaded returns the same
    handle, so this reads the globals of the very library the loader uses.
    """

    def read(path: str) -> str:
        fn = ctypes.CDLL(path, mode=os.RTLD_NOW)["fixture_init_record"]
        fn.restype = ctypes.c_char_p
        return fn().decode()

    return read
