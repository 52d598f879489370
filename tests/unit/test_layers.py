"""Layers point down, and no module imports itself round a cycle (docs/principles.md, §7).

Every import of an inclavare module by another — at module level or inside a
function, but not under ``TYPE_CHECKING`` (types cost nothing at run time) —
must go to the same layer or a lower one; and the module graph has no cycle.
"""

from __future__ import annotations

import ast
import os

import inclavare

SRC = os.path.dirname(inclavare.__file__)

# Lowest first. A package may import from its own rank and below.
RANKS = {
    "errors": 0, "_fastjson": 0, "_toml": 0, "_sansio": 0, "log": 0, "_sys": 0, "spec": 0, "__init__": 0,
    "_launcher": 0,  # the text of the launchers' exit: tools/mklauncher.py and carrier/node.py
    "epm.errors": 0,  # the client's errors: inclavare.errors only
    "_proto": 0,  # generated from proto/ (tools/genproto.py): imports protobuf, grpc and itself, nothing of ours
    "seccomp": 1,
    "attestation": 2, "enclave.identity": 2,
    "kbs": 3,
    "image": 4, "enclave": 4,
    "enclave.pool": 5,  # a pooled instance joins a container as `rune exec` does (runtime.process)
    "runtime": 5, "carrier": 5,
    "epm.client": 5,  # the carrier's client of epm: grpc and the generated protos, imported on use
    "cli": 6, "demo": 6, "testing": 6, "shim": 6,
    "deviceplugin": 6,  # serves kubelet with the generated protos (_proto)
    "epm": 6,  # serves the carriers' caches with the generated protos (_proto)
}  # fmt: skip


def modules() -> dict[str, str]:
    found = {}
    for directory, _dirs, files in os.walk(SRC):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, os.path.dirname(SRC))[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = path
    return found


def _targets(module: str, path: str, node: ast.Import | ast.ImportFrom, known: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = (f"{package}.{node.module}" if node.module else package) if node.level else (node.module or "")
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name.startswith("inclavare") and name != module:
            out.append(name)
    return out


def edges() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, typing_only = stack.pop()
            for child in ast.iter_child_nodes(node):
                only = typing_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
                if isinstance(child, (ast.Import, ast.ImportFrom)) and not only:
                    graph[module].update(_targets(module, path, child, known))
                stack.append((child, only))
    return graph


def layer(module: str) -> str:
    """The most specific entry of RANKS that contains `module` (enclave.identity before enclave)."""
    parts = module.split(".")[1:] or ["__init__"]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANKS:
            return ".".join(parts[:n])
    return parts[0]


def test_every_package_has_a_rank():
    assert {layer(m) for m in modules()} <= set(RANKS)


def test_imports_point_down():
    upward = sorted(
        f"{a} -> {b}" for a, targets in edges().items() for b in targets if RANKS[layer(b)] > RANKS[layer(a)]
    )
    assert upward == []


def test_no_import_cycles():
    graph = edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []
