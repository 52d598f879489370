"""The operator's settings: flags, and an optional TOML file the plugin re-reads when it changes.

    enclave_memory_mib = 4096     # inclavare.io/enclave-memory-mib devices (0: none)
    sgx_enclave_limit = 110       # sgx.intel.com/enclave shares (pods using the device at once)
    sgx_provision_limit = 110     # sgx.intel.com/provision shares

A key the file leaves out keeps its flag's value. In Kubernetes the file is
a ConfigMap key (deploy/node.yaml): kubelet swaps the mounted file when the
ConfigMap changes, and the new capacity reaches kubelet in the next
ListAndWatch answer, without a restart. A file that becomes unreadable or
wrong while the plugin runs is reported and the settings in force are kept;
at start it is an error.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib

from .errors import DevicePluginError
from .resources import MAX_ENCLAVE_MEMORY_MIB, Settings

_LIMITS = {
    "enclave_memory_mib": (0, MAX_ENCLAVE_MEMORY_MIB),
    "sgx_enclave_limit": (1, 100_000),
    "sgx_provision_limit": (1, 100_000),
}


def check(settings: Settings, where: str = "") -> Settings:
    """`settings` if every value is in range; else the error names the key (``where: key: ...``)."""
    for key, (low, high) in _LIMITS.items():
        value = getattr(settings, key)
        if not low <= value <= high:
            name = key.replace("_", "-") if where == "--" else key  # a flag, or a key of the file
            raise DevicePluginError(f"{where}{name}", f"{value} is out of range ({low} to {high})")
    return settings


def parse(text: bytes, file: str, defaults: Settings) -> Settings:
    try:
        doc = tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DevicePluginError(file, f"not valid TOML ({str(exc).splitlines()[0] if str(exc) else 'error'})") from None
    values = {}
    for key, value in doc.items():
        if key not in _LIMITS:
            raise DevicePluginError(f"{file}: {key}", f"unknown setting (known: {', '.join(_LIMITS)})")
        if not isinstance(value, int) or isinstance(value, bool):
            raise DevicePluginError(f"{file}: {key}", f"must be an integer, not {value!r}")
        values[key] = value
    return check(dataclasses.replace(defaults, **values), f"{file}: ")


class SettingsFile:
    """The file and the settings it gave; :meth:`reload` reads it again only when it changed."""

    def __init__(self, path: str | None, defaults: Settings) -> None:
        self.path = path
        self.defaults = check(defaults, "--")
        self._seen: tuple[int, int, int, int] | None = None
        self.settings = self.defaults
        if path is not None:
            self.reload()

    def reload(self) -> bool:
        """True if the settings changed. Raises :class:`DevicePluginError` if the file is unusable
        (the settings in force stay)."""
        if self.path is None:
            return False
        try:
            st = os.stat(self.path)
            seen = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            if seen == self._seen:
                return False
            with open(self.path, "rb") as f:
                text = f.read(1 << 16)
        except OSError as exc:
            self._seen = None
            raise DevicePluginError(self.path, exc.strerror or "cannot read") from None
        self._seen = seen
        settings = parse(text, self.path, self.defaults)
        changed = settings != self.settings
        self.settings = settings
        return changed
