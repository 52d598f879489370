"""`rune features`: what this build of rune supports (runtime-spec features.md).

Only what rune really implements is listed: a field appears as enabled only
when the code path behind it exists and is tested.
"""

from __future__ import annotations

import os

from .. import OCI_VERSION, __version__
from .._sys import consts as c
from . import lsm, rdt
from .config import _FLAG_OPTIONS, PROPAGATION

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def features() -> dict[str, object]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": sorted([*_FLAG_OPTIONS, *PROPAGATION, "tmpcopyup"]),
        "linux": {
            "namespaces": sorted(c.NAMESPACES),
            "capabilities": list(c.CAPABILITIES),
            # systemd: the slice:prefix:name form is emulated on cgroupfs (no D-Bus).
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": os.path.exists(rdt.RESCTRL + "/schemata")},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.inclavare-containers.rune.version": __version__},
        # rune's extension (features.md allows vendor fields): what enclave
        # containers can run on this host.
        "io.github.inclavare-containers.enclave": _enclave(),
    }


def _seccomp() -> dict[str, object]:
    from ..seccomp import seccomp_features

    return seccomp_features()


def _enclave() -> dict[str, object]:
    from ..enclave import registry

    tees = ["software"]
    if any(os.path.exists(p) for p in ("/dev/sgx_enclave", "/dev/sgx/enclave", "/dev/isgx")):
        tees.insert(0, "intelSgx")
    return {"types": tees, "runtimes": registry.available(), "palApiVersions": [1, 2, 3]}
