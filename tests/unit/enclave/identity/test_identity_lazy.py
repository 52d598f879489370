"""enclave/identity/__init__.py imports names on first use: every exported name is the
object its module defines, whichever submodule was imported first (a submodule named like
a function, `measure`, must not shadow the function)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import inclavare.enclave.identity as identity


def test_every_exported_name_resolves():
    for name in identity.__all__:
        value = getattr(identity, name)
        assert not isinstance(value, type(identity)), f"identity.{name} is a module"


def test_measure_is_the_function_even_after_its_module_was_imported_first():
    code = ("import inclavare.enclave.identity.measure\n"
            "from inclavare.enclave.identity import measure\n"
            "assert callable(measure) and measure.__module__.endswith('measure')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        identity.no_such_name  # noqa: B018
    assert importlib.import_module("inclavare.enclave.identity.signing_server")
