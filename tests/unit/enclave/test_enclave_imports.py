"""What the enclave modules cost on rune's paths: no typing, re or ctypes where not needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

BASE = "import inclavare.spec.model, inclavare.errors, inclavare._fastjson"
HEAVY = {"typing", "re", "ctypes", "importlib.metadata", "json", "base64", "dataclasses"}


def new_modules(code: str) -> set[str]:
    """Modules that `code` imports beyond what rune's hot path already has."""
    script = f"{BASE}\nimport sys\nbefore = set(sys.modules)\n{code}\nprint(' '.join(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "code",
    [
        "import inclavare.enclave.config",  # `rune create`, every container
        "import inclavare.enclave.agent",  # `rune exec` of an enclave container
        # Checking and resolving a PAL path loads nothing until the factory is called.
        "from inclavare.enclave import registry; fd = registry.select('/usr/bin/true', pal_dirs=('/usr/bin',)); "
        "registry.resolve('/usr/bin/true', fd)",
        # What every `rune create` reads: the node's configuration, a plain bundle's settings.
        "from inclavare.runtime import nodeconfig, enclave_setup; import inclavare._toml; "
        "nodeconfig.parse(b'[enclave]\\nrequired = true\\n', 'x'); "
        "from inclavare.enclave.config import read_settings; read_settings({'a': 'b'}, ['PATH=/bin'])",
    ],
)
def test_light_imports(code):
    assert new_modules(code) & HEAVY == set()


def test_the_pal_loader_needs_ctypes():
    assert "ctypes" in new_modules("import inclavare.enclave.pal")
