"""What a container's config.json says its enclave must run: program, argv, environment, memory.

By the time the shim's Create sees config.json, containerd has merged the
image configuration (``Entrypoint``/``Cmd`` -> ``process.args``, ``Env``)
with the pod spec (command, args, env, resources), so the spec is the one
source. The carriers turn it into an enclave manifest
(docs/enclave-identity.md, "The manifest") with these rules:

* **program**: ``process.args[0]``, an absolute, normalised path in the rootfs
  (an enclave runs only the program its manifest measured, named as written:
  docs/builtin-runtimes.md);
* **argv**: ``process.args``, fixed and measured (``[argv] policy = "fixed"``):
  changing the pod's args changes the enclave's measurement;
* **environment**: measured (``[env] fixed``), except what depends on the
  node or the cluster rather than on the workload, which is passed through
  by name only (``[env] passthrough``): ``HOSTNAME`` and the Kubernetes
  service variables (``<SVC>_SERVICE_HOST``, ``<SVC>_SERVICE_PORT[_<NAME>]``,
  ``<SVC>_PORT=<proto>://...``, ``<SVC>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]``;
  Kubernetes documentation, "Service: Environment variables"), whose values
  change with the pod's name and with the Services that exist when it
  starts. rune's own parameters (``ENCLAVE_*``, ``RUNE_CARRIER``) are
  dropped; with several entries of one name the last wins, as in a shell;
* **memory**: ``linux.resources.memory.limit`` when set (the container's
  cgroup limit, from the pod's ``resources.limits.memory``), else 256 MiB;
* **secrets**: with KBS secret provisioning asked for (``enclave.kbs.url``),
  the secrets directory (``enclave.kbs.secrets_dir``, default /run/secrets);
  the broker the enclave trusts is pinned by :mod:`.broker`.

Values that are secrets do not belong in the environment of a measured
enclave: a fixed value is written into the manifest in the rootfs and goes
into the measurement. Use the KBS (docs/kbs.md).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from ..enclave.config import SOURCES, Settings
from .errors import CarrierError

DEFAULT_MEMORY = 256 << 20
_RUNE_VARS = frozenset(var for var, _annotation in SOURCES.values() if var)
_SERVICE_NAME = re.compile(
    r"HOSTNAME|[A-Z_][A-Z0-9_]*_"
    r"(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)"
)
_SERVICE_URL = re.compile(r"[A-Z_][A-Z0-9_]*_PORT")  # with a tcp://, udp:// or sctp:// value


@dataclasses.dataclass(frozen=True)
class Workload:
    program: str
    args: tuple[str, ...]
    env_fixed: tuple[tuple[str, str], ...]  # (name, value), sorted by name
    env_passthrough: tuple[str, ...]  # sorted
    memory_limit: int
    secrets_dir: str | None


def workload_of(spec: dict[str, Any], settings: Settings) -> Workload:
    """The workload of `spec`; every problem is one line naming the config.json field."""
    process = spec.get("process")
    if not isinstance(process, dict):
        raise CarrierError("config.json: process", "missing: a carrier needs the container's process")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise CarrierError("config.json: process.args", "must be a non-empty array of strings")
    program = args[0]
    if not program.startswith("/") or os.path.normpath(program) != program or "\0" in program:
        raise CarrierError("config.json: process.args[0]", f"{program!r} must be an absolute, normalised path (set "
                           "the image's Entrypoint, or the pod's command, to the program's full path)")  # fmt: skip
    fixed, passthrough = env_policy(process.get("env") or [])
    kbs = settings.found.get("kbs_url")
    secrets = settings.get("kbs_secrets_dir", "/run/secrets") if kbs else None
    return Workload(program, tuple(args), fixed, passthrough, memory_limit(spec), secrets)


def env_policy(env: object) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(measured name=value pairs, names passed through unmeasured) of a process.env (module docstring)."""
    if not isinstance(env, list):
        raise CarrierError("config.json: process.env", "must be an array of strings")
    values: dict[str, str] = {}
    for i, entry in enumerate(env):
        if not isinstance(entry, str) or "=" not in entry or entry.startswith("=") or "\0" in entry:
            raise CarrierError(f"config.json: process.env[{i}]", "must be a NAME=value string")
        name, _, value = entry.partition("=")
        values[name] = value
    fixed: dict[str, str] = {}
    passthrough: list[str] = []
    for name, value in values.items():
        if name in _RUNE_VARS:
            continue
        if _SERVICE_NAME.fullmatch(name) or (
            _SERVICE_URL.fullmatch(name) and value.startswith(("tcp://", "udp://", "sctp://"))
        ):
            passthrough.append(name)
        else:
            fixed[name] = value
    by_name = sorted(fixed.items(), key=lambda kv: kv[0].encode())
    return tuple(by_name), tuple(sorted(passthrough, key=str.encode))


def memory_limit(spec: dict[str, Any]) -> int:
    linux = spec.get("linux")
    resources = linux.get("resources") if isinstance(linux, dict) else None
    memory = resources.get("memory") if isinstance(resources, dict) else None
    limit = memory.get("limit") if isinstance(memory, dict) else None
    if limit is None:
        return DEFAULT_MEMORY
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise CarrierError("config.json: linux.resources.memory.limit", "must be an integer")
    return limit if limit > 0 else DEFAULT_MEMORY  # -1 (and 0): unlimited, as runc reads it
