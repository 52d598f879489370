"""The bundle's config.json, from rune's template and the image configuration.

Ref: OCI image-spec conversion.md ("Conversion to OCI Runtime
Configuration"): ``Entrypoint`` + ``Cmd`` -> ``process.args``; ``Env`` ->
``process.env``; ``WorkingDir`` -> ``process.cwd``; ``User`` (``user``,
``uid``, ``user:group``, ``uid:gid``...) -> ``process.user`` resolved
against the rootfs' /etc/passwd and /etc/group, with the user's
supplementary groups as ``additionalGids`` when only a user is given;
``Labels`` -> annotations, and ``StopSignal``, ``ExposedPorts``, ``created``,
``author``, ``architecture``, ``os`` -> ``org.opencontainers.image.*``
annotations. ``Volumes`` are left to the caller (implementation-defined).

Enclave settings are the operator's, never the image's: rune reads
``enclave.*`` annotations and ``ENCLAVE_*`` variables (docs/encrypted-images.md,
"Images and enclave settings") and loads the enclave runtime they name on
the host. So ``Labels`` whose key and ``Env`` entries whose name start with
"enclave" in any case or spelling (separators and Unicode compatibility
forms ignored: ``Enclave-Type``, ``ENCLAVE_TYPE`` as a label, ``enclave.type``
as a variable) are not copied unless the caller asks for them
(``enclave_settings``, ``--enclave-settings-from-image``); each one dropped
is reported by name, never by value.

The template is runc's (``rune spec``) with ``terminal`` off (an image
bundle is run non-interactively) and a writable root (an image's rootfs is
the container's). Rootless callers get the template's rootless variant.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from ..errors import one_line
from ..spec.template import example, to_rootless
from .errors import LayoutError
from .rootfs import RootFS

_PREFIX = "org.opencontainers.image."


def runtime_config(
    image: dict[str, Any],
    rootfs: RootFS,
    rootless: bool,
    where: str = "image config",
    enclave_settings: bool = False,
    dropped: list[str] | None = None,
) -> dict[str, Any]:
    """The runtime spec for running `image` from `rootfs`; without `enclave_settings`,
    a line per enclave setting left out is appended to `dropped`."""
    spec: dict[str, Any] = example()
    drops: list[str] = [] if dropped is None else dropped
    cfg = image.get("config") or {}
    if not isinstance(cfg, dict):
        raise LayoutError(where, "config", "must be an object")
    proc = spec["process"]
    proc["terminal"] = False
    args = _strings(cfg, "Entrypoint", where) + _strings(cfg, "Cmd", where)
    if args:
        proc["args"] = args
    env = _strings(cfg, "Env", where)
    if not enclave_settings:
        env = _without_enclave(env, lambda e: e.partition("=")[0], f"{where}: config.Env", drops)
    if env:
        proc["env"] = env if any(e.startswith("PATH=") for e in env) else [proc["env"][0], *env]
    workdir = cfg.get("WorkingDir") or "/"
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        raise LayoutError(where, "config.WorkingDir", "must be an absolute path")
    proc["cwd"] = workdir
    user = cfg.get("User") or ""
    if not isinstance(user, str):
        raise LayoutError(where, "config.User", "must be a string")
    proc["user"] = resolve_user(user, rootfs, where)
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["annotations"] = _annotations(image, cfg, where)
    if not enclave_settings:
        labels = _without_enclave(list(spec["annotations"]), str, f"{where}: config.Labels", drops)
        spec["annotations"] = {k: spec["annotations"][k] for k in labels}
    return to_rootless(spec) if rootless else spec


def resolve_user(user: str, rootfs: RootFS, where: str) -> dict[str, Any]:
    """conversion.md's ``Config.User`` forms, names looked up inside the rootfs."""
    if not user:
        return {"uid": 0, "gid": 0}
    name, sep, group = user.partition(":")
    passwd = _table(rootfs, "passwd", where)
    entry = next((p for p in passwd if p[0] == name or (name.isdigit() and p[2] == name)), None)
    if name.isdigit():
        uid = int(name)
    elif entry is not None and entry[2].isdigit():
        uid = int(entry[2])
    else:
        raise LayoutError(where, "config.User", f"user {name!r} is not in the image's /etc/passwd")
    out: dict[str, Any] = {"uid": uid, "gid": int(entry[3]) if entry and entry[3].isdigit() else 0}
    groups = _table(rootfs, "group", where)
    if sep:
        if group.isdigit():
            out["gid"] = int(group)
        else:
            match = next((g for g in groups if g[0] == group and g[2].isdigit()), None)
            if match is None:
                raise LayoutError(where, "config.User", f"group {group!r} is not in the image's /etc/group")
            out["gid"] = int(match[2])
    elif entry is not None:
        extra = sorted({int(g[2]) for g in groups if g[2].isdigit() and entry[0] in g[3].split(",")} - {out["gid"]})
        if extra:
            out["additionalGids"] = extra
    return out


def _table(rootfs: RootFS, name: str, where: str) -> list[list[str]]:
    data = rootfs.read_file(["etc", name], where) or b""
    rows = [line.split(":") for line in data.decode(errors="replace").splitlines() if line and not line.startswith("#")]
    return [r + [""] * (4 - len(r)) for r in rows if len(r) >= 3]


def _strings(cfg: dict[str, Any], key: str, where: str) -> list[str]:
    value = cfg.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LayoutError(where, f"config.{key}", "must be an array of strings")
    return list(value)


def _annotations(image: dict[str, Any], cfg: dict[str, Any], where: str) -> dict[str, str]:
    labels = cfg.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise LayoutError(where, "config.Labels", "must map strings to strings")
    out = dict(labels)
    for key in ("created", "author", "architecture", "os"):
        if isinstance(image.get(key), str):
            out[_PREFIX + key] = image[key]
    if isinstance(cfg.get("StopSignal"), str):
        out[_PREFIX + "stopSignal"] = cfg["StopSignal"]
    if isinstance(cfg.get("ExposedPorts"), dict):
        out[_PREFIX + "exposedPorts"] = ",".join(sorted(cfg["ExposedPorts"]))
    return out


def is_enclave_setting(name: str) -> bool:
    """Does `name` (a label key or variable name) read as an enclave setting in any spelling?"""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if c.isalnum()).startswith("enclave")


def _without_enclave(items: list[str], name_of: Callable[[str], str], where: str, dropped: list[str]) -> list[str]:
    kept = []
    for item in items:
        name = name_of(item)
        if is_enclave_setting(name):
            dropped.append(one_line(f"{where}: {name[:120]} not copied: enclave settings are the operator's "
                                    "(--enclave-settings-from-image copies them)"))  # fmt: skip
        else:
            kept.append(item)
    return kept
