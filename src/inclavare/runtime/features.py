"""`rune features`: what this build of rune supports (runtime-spec features.md).

Only what rune really implements is listed: a field appears as enabled only
when the code path behind it exists and is tested.
"""

from __future__ import annotations

from .. import OCI_VERSION, __version__
from .._sys import consts as c
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
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.inclavare-containers.rune.version": __version__},
    }


def _seccomp() -> dict[str, object]:
    from .seccomp import seccomp_features

    return seccomp_features()
