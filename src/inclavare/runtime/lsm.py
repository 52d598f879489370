"""Linux security module labels: process.apparmorProfile, process.selinuxLabel,
linux.mountLabel (config.md, config-linux.md).

A label is applied for the next execve by writing it to /proc/self/attr
(apparmor: "exec <profile>", apparmor(7); SELinux: the context, proc(5)).
Asking for a label on a host whose kernel does not run that LSM is an error,
not a silent no-op: the workload would run less confined than requested.
The one exception is linux.mountLabel without SELinux, which crun and runc
ignore too: it only names the context mounts get *under* SELinux, so with
SELinux off there is nothing it could have confined.
"""

from __future__ import annotations

import os

from ..errors import InclavareError, SpecError

APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux/enforce"


def apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED) as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists(SELINUX_FS)


def check(apparmor: str | None, selinux: str | None, field: str = "process") -> None:
    """Refuse labels this host cannot apply (called in `rune create`/`exec`, before anything runs)."""
    if apparmor and not apparmor_enabled():
        raise SpecError(f"{field}.apparmorProfile", f"AppArmor is not enabled on this host (profile {apparmor!r})")
    if selinux and not selinux_enabled():
        raise SpecError(f"{field}.selinuxLabel", f"SELinux is not enabled on this host (label {selinux!r})")


def mount_context(label: str | None) -> str:
    """The mount option that applies linux.mountLabel, or "" (see the module docstring)."""
    return f'context="{label}"' if label and selinux_enabled() else ""


def apply_exec_labels(apparmor: str | None, selinux: str | None) -> None:
    """Label the next execve; must run right before it, in the container."""
    if apparmor:
        _write_attr("apparmor/exec" if os.path.exists("/proc/self/attr/apparmor") else "exec", f"exec {apparmor}")
    if selinux:
        _write_attr("exec", selinux)


def _write_attr(name: str, value: str) -> None:
    try:
        with open(f"/proc/self/attr/{name}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise InclavareError(f"setting the {name} LSM label {value!r}: {exc.strerror}") from None
