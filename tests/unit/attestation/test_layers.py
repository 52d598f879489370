"""Layers point down (docs/principles.md §7): what the attestation layer may import.

Every import counts, TYPE_CHECKING ones too: a type named upward is still a
dependency on the layer above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import inclavare

SRC = Path(inclavare.__file__).parent


def imports_of(package: str) -> dict[str, set[str]]:
    """``{module file: inclavare modules it imports}`` for every module under ``package``."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package.replace(".", "/")).rglob("*.py")):
        package_parts = list(path.relative_to(SRC.parent).parts[:-1])  # what `from .` names
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package_parts[: len(package_parts) - node.level + 1] if node.level else []
                names.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
        found[str(path.relative_to(SRC))] = {n for n in names if n.startswith("inclavare")}
    return found


def upward(package: str, above: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in imports_of(package).items()
        for name in sorted(names)
        if any(name == a or name.startswith(a + ".") for a in above)
    ]


@pytest.mark.parametrize(
    ("package", "above"),
    [
        # below enclave, runtime, image, kbs and the CLIs: evidence is built and checked here
        ("attestation", ("inclavare.enclave", "inclavare.runtime", "inclavare.kbs", "inclavare.image",
                         "inclavare.cli", "inclavare.testing", "inclavare.demo")),
        # the sans-IO RCAR core knows nothing of the broker, its storage or HTTP
        ("kbs.protocol", ("inclavare.kbs.service", "inclavare.kbs.server", "inclavare.kbs.client",
                          "inclavare.kbs.storage", "inclavare.enclave", "inclavare.runtime")),
    ],
)  # fmt: skip
def test_layers_point_down(package: str, above: tuple[str, ...]) -> None:
    assert upward(package, above) == []


def test_the_check_sees_relative_imports() -> None:
    """The walk resolves ``from ..x import y``: the attesters do import the claims module."""
    assert "inclavare.attestation.claims" in imports_of("attestation.attesters")["attestation/attesters/software.py"]
