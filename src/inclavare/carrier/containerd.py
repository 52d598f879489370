"""The ``rune`` runtime entry in containerd's config.toml, added and removed without touching the rest.

What `inclavare node install` appends (for a version 2 file; version 1 uses
``plugins.cri``, version 3 ``plugins."io.containerd.cri.v1.runtime"``)::

    # BEGIN inclavare node install (`inclavare node uninstall` removes this block)
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rune]
      runtime_type = "io.containerd.rune.v2"
      runtime_path = "/usr/local/bin/containerd-shim-rune-v2"
      pod_annotations = ["enclave.*"]
      container_annotations = ["enclave.*"]
    # END inclavare node install

``runtime_type`` makes containerd start ``containerd-shim-rune-v2``;
``runtime_path`` names it exactly, whatever containerd's $PATH;
``pod_annotations``/``container_annotations`` let the pod's ``enclave.*``
annotations through to the bundle (the CRI plugin drops every other
annotation). The file is edited as text — the operator's comments, order
and formatting stay — and the result is checked with :mod:`tomllib`: it must
parse, and with our block taken out it must be exactly the operator's
configuration. A runtime named ``rune`` that is not ours, or a file the
block cannot be appended to (runtimes given as an inline table), is refused.

containerd 1.6 replaces its built-in runtime table (which holds ``runc``) as
soon as the file names any runtime (measured: ``containerd config dump``), and
the CRI plugin then refuses to start because its default runtime is gone.
So when the file names no runtime at all, the block also declares ``runc``
as containerd's default has it, and takes it away again on uninstall.
"""

from __future__ import annotations

import tomllib
from typing import Any

from .errors import InstallError

BEGIN = "# BEGIN inclavare node install (`inclavare node uninstall` removes this block)"
END = "# END inclavare node install"
HANDLER = "rune"
RUNTIME_TYPE = "io.containerd.rune.v2"
ANNOTATIONS = ("enclave.*",)
NEW_FILE = "version = 2\n"  # what a file install creates holds besides the block
# containerd config version -> the CRI plugin's table
_CRI = {
    1: ("plugins", "cri"),
    2: ("plugins", "io.containerd.grpc.v1.cri"),
    3: ("plugins", "io.containerd.cri.v1.runtime"),
}


def add_runtime(text: str, shim: str, file: str) -> str:
    """`text` with our block (re)placed at its end; raises :class:`InstallError` naming `file`."""
    base = remove_runtime(text)
    doc = _parse(base, file) if base.strip() else {"version": 2}  # a new file: the version containerd 1.x documents
    version = doc.get("version", 1)
    if version not in _CRI:
        raise InstallError(file, f"version = {version!r}: only containerd config versions 1, 2 and 3 are known")
    cri = _table(doc, _CRI[version], file)
    containerd = _table(cri, ("containerd",), file)
    runtimes = _table(containerd, ("runtimes",), file)
    if HANDLER in runtimes:
        raise InstallError(file, f"a runtime named {HANDLER!r} is already configured (not by inclavare node install)")
    prefix = ".".join(_key(k) for k in (*_CRI[version], "containerd", "runtimes"))
    lines = [
        BEGIN,
        f"[{prefix}.{HANDLER}]",
        f'  runtime_type = "{RUNTIME_TYPE}"',
        f"  runtime_path = {_string(shim)}",
        f"  pod_annotations = {_array(ANNOTATIONS)}",
        f"  container_annotations = {_array(ANNOTATIONS)}",
    ]
    default = containerd.get("default_runtime_name", "runc")
    if not runtimes and default == "runc":
        lines += [f"[{prefix}.runc]  # containerd's default, lost once the file names a runtime",
                  '  runtime_type = "io.containerd.runc.v2"']  # fmt: skip
    lines.append(END)
    # One blank line before the block, which remove_runtime takes away with it.
    head = base + ("\n" if base.endswith("\n") else "\n\n") if base.strip() else NEW_FILE + "\n"
    result = head + "\n".join(lines) + "\n"
    _check(result, base, file)
    return result


def remove_runtime(text: str) -> str:
    """`text` without our block (and the blank line put before it); unchanged if there is none."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN)
        end = next(i for i in range(start, len(lines)) if lines[i].rstrip("\n") == END)
    except StopIteration:
        return text
    if start > 0 and not lines[start - 1].strip():
        start -= 1
    return "".join(lines[:start] + lines[end + 1 :])


def has_runtime(text: str) -> bool:
    return any(line.rstrip("\n") == BEGIN for line in text.splitlines())


def _check(result: str, base: str, file: str) -> None:
    doc = _parse(result, file, what="the file with the rune runtime added")
    before = _parse(base, file) if base.strip() else {"version": 2}
    runtimes = doc
    for key in (*_CRI[doc.get("version", 1)], "containerd", "runtimes"):
        runtimes = runtimes[key]
    ours = runtimes.pop(HANDLER)
    if ours != {"runtime_type": RUNTIME_TYPE, "runtime_path": ours.get("runtime_path"),
                "pod_annotations": list(ANNOTATIONS), "container_annotations": list(ANNOTATIONS)}:  # fmt: skip
        raise InstallError(file, "the rune runtime entry would not read back as written")
    if "runc" in runtimes and "runc" not in _runtimes_of(before):
        del runtimes["runc"]
    _prune(doc)
    _prune(before)
    if doc != before:
        raise InstallError(file, "appending the rune runtime would change other settings: add it by hand")


def _runtimes_of(doc: dict[str, Any]) -> dict[str, Any]:
    for key in (*_CRI[doc.get("version", 1)], "containerd", "runtimes"):
        doc = doc.get(key, {}) if isinstance(doc, dict) else {}
    return doc


def _prune(doc: dict[str, Any]) -> None:
    """Drop tables left empty (the headers our block implies exist nowhere else)."""
    for key in list(doc):
        if isinstance(doc[key], dict):
            _prune(doc[key])
            if not doc[key]:
                del doc[key]


def _parse(text: str, file: str, what: str = "") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(file, f"{what + ': ' if what else ''}not valid TOML: {exc}") from None


def _table(doc: dict[str, Any], keys: tuple[str, ...], file: str) -> dict[str, Any]:
    for key in keys:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise InstallError(file, f"{key} is not a table")
        doc = value
    return doc


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _string(key)


def _string(text: str) -> str:
    if any(c in text for c in '"\\\n\r\t') or not text.isprintable():
        raise InstallError(text, "a path containing quotes, backslashes or control characters")
    return f'"{text}"'


def _array(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_string(i) for i in items) + "]"
