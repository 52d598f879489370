"""Expanding a manifest template: pin every trusted hash, then write TOML.

``gramine-manifest``/``gramine-sgx-sign`` turn ``sgx.trusted_files = ["file:..."]``
into entries with a ``sha256``; :func:`expand_trusted_files` does the same
for our manifest (and the wasm module). Hashes already pinned are checked,
never overwritten: a template that pins a hash states what it expects.
:func:`dump_manifest` writes the result as TOML (by hand: the standard
library reads TOML but cannot write it); ``parse_manifest(dump_manifest(m))``
gives back ``m``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re

from .errors import ManifestError
from .manifest import Manifest, TrustedFile
from .rootfs import RootfsError, sha256_in_root

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def expand_trusted_files(manifest: Manifest, rootfs: str) -> Manifest:
    """A copy of `manifest` with every trusted hash pinned from `rootfs` (pinned ones checked)."""
    files = tuple(
        TrustedFile(t.path, _pin(manifest, f"trusted_files[{i}]", t.path, t.sha256, rootfs))
        for i, t in enumerate(manifest.trusted_files)
    )
    wasm = manifest.wasm
    if wasm is not None:
        digest = _pin(manifest, "wasm.module", wasm.module, wasm.module_sha256, rootfs)
        wasm = dataclasses.replace(wasm, module_sha256=digest)
    return dataclasses.replace(manifest, trusted_files=files, wasm=wasm)


def require_pinned(manifest: Manifest) -> None:
    """Refuse a template: a signed manifest must pin every hash the runtime checks at open."""
    for i, t in enumerate(manifest.trusted_files):
        if t.sha256 is None:
            raise ManifestError(
                manifest.file, f"trusted_files[{i}].sha256", f"missing for {t.path} (expand the template)"
            )
    if manifest.wasm is not None and manifest.wasm.module_sha256 is None:
        raise ManifestError(manifest.file, "wasm.module_sha256", "missing (expand the template)")


def _pin(manifest: Manifest, where: str, path: str, pinned: bytes | None, rootfs: str) -> bytes:
    try:
        actual = sha256_in_root(rootfs, path)
    except RootfsError as exc:
        raise ManifestError(manifest.file, where, str(exc)) from None
    if pinned is not None and pinned != actual:
        field = "wasm.module_sha256" if where == "wasm.module" else f"{where}.sha256"
        raise ManifestError(manifest.file, field, f"mismatch for {path}")
    return actual


def dump_manifest(manifest: Manifest) -> str:
    """`manifest` as TOML text (canonical field order, sizes in bytes)."""
    out = [f"runtime = {_s(manifest.runtime)}"]
    if manifest.entrypoint is not None:
        out.append(f"entrypoint = {_s(manifest.entrypoint)}")
    out += [
        f"memory_limit = {manifest.memory_limit}",
        f"isv_prod_id = {manifest.isv_prod_id}",
        f"isv_svn = {manifest.isv_svn}",
        f"debug = {_b(manifest.debug)}",
        f"allowed_files = {_list(manifest.allowed_files)}",
        "",
        "[argv]",
        f"policy = {_s(manifest.argv_policy)}",
    ]
    if manifest.argv_policy == "fixed":
        out.append(f"values = {_list(manifest.argv)}")
    out += ["", "[env]", f"passthrough = {_list(manifest.env_passthrough)}", "", "[env.fixed]"]
    out += [f"{_key(name)} = {_s(value)}" for name, value in manifest.env_fixed]
    for t in manifest.trusted_files:
        out += ["", "[[trusted_files]]", f"path = {_s(t.path)}"]
        if t.sha256 is not None:
            out.append(f"sha256 = {_s(t.sha256.hex())}")
    if manifest.wasm is not None:
        out += _dump_wasm(manifest)
    if manifest.kbs is not None:
        out += ["", "[kbs]", f"urls = {_list(manifest.kbs.urls)}"]
        out += [f"cacert = {_s(manifest.kbs.cacert)}"] if manifest.kbs.cacert is not None else []
        pins = tuple(base64.b64encode(p).decode() for p in manifest.kbs.pin_sha256)
        out += [f"pin_sha256 = {_list(pins)}"] if pins else []
    return "\n".join(out) + "\n"


def _dump_wasm(manifest: Manifest) -> list[str]:
    w = manifest.wasm
    assert w is not None
    out = ["", "[wasm]", f"module = {_s(w.module)}"]
    if w.module_sha256 is not None:
        out.append(f"module_sha256 = {_s(w.module_sha256.hex())}")
    out.append(f"max_memory_pages = {w.max_memory_pages}")
    out += [f"fuel = {w.fuel}"] if w.fuel is not None else []
    out += [f"epoch_deadline = {w.epoch_deadline}"] if w.epoch_deadline is not None else []
    for d in w.preopened_dirs:
        out += ["", "[[wasm.preopened_dirs]]", f"guest = {_s(d.guest)}", f"path = {_s(d.path)}"]
        out.append(f"read_only = {_b(d.read_only)}")
    return out


def _s(text: str) -> str:
    # A JSON string with ensure_ascii is a valid TOML basic string: both use
    # \" \\ \b \f \n \r \t and \u plus four hex digits (TOML 1.0 "Basic strings"), and
    # non-BMP characters come out as surrogate pairs, which TOML refuses,
    # hence ensure_ascii=False plus our own escaping of control characters.
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    return '"' + "".join(f"\\u{ord(c):04x}" if c == "\x7f" else c for c in body) + '"'


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _s(name)


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_s(i) for i in items) + "]"
