"""A kernel-like configfs-tsm over a temporary directory (drivers/virt/coco/tsm.c behaviour).

``mkdir`` of an entry populates the attributes the provider has; writes to
``inblob``/``privlevel`` are validated as the kernel does (64-byte inblob,
privlevel 0..3 and >= privlevel_floor, read-only attributes refuse writes)
and bump ``generation``; reading ``outblob`` regenerates the report when the
inputs changed since the last read (REPORT_DATA = inblob, zero-padded, at the
provider's offset in a genuine template). ``interfere = n`` makes another
writer change ``inblob`` right after each of the next n outblob reads, which
is the race the ABI's generation attribute exists to expose. The real file
operations of :class:`ConfigfsIO` do the I/O; only the kernel's side effects
are simulated.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from inclavare.attestation.attesters.tsm import ConfigfsIO

VECTORS = Path(__file__).resolve().parents[3] / "vectors"
TDX_TEMPLATE = (VECTORS / "tdx/trustee/tdx_quote_4.dat").read_bytes()  # quote v4: REPORTDATA at 568
SNP_TEMPLATE = (VECTORS / "snp/virtee/report_milan.bin").read_bytes()  # REPORT_DATA at 0x50
PROVIDERS = {
    "tdx_guest": (TDX_TEMPLATE, 568, False),
    "sev_guest": (SNP_TEMPLATE, 0x50, True),
}
WRITABLE = {"inblob", "privlevel"}


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@dataclass
class Entry:
    inblob: bytes | None = None
    privlevel: int = 0
    generation: int = 0
    generated_at: int = -1
    writes: list[str] = field(default_factory=list)


class FakeTsm(ConfigfsIO):
    def __init__(self, root: Path, provider: str = "tdx_guest", *, floor: int = 0, ignore_inblob: bool = False) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.provider = provider
        self.template, self.offset, self.has_privlevel = PROVIDERS[provider]
        self.floor = floor
        self.ignore_inblob = ignore_inblob
        self.entries: dict[str, Entry] = {}
        self.interfere = 0
        self.created: list[str] = []

    def _entry(self, path: str) -> tuple[Entry, str]:
        entry_dir, attr = os.path.split(path)
        entry = self.entries.get(entry_dir)
        if entry is None:
            raise _oserror(errno.ENOENT)
        return entry, attr

    def _set_generation(self, entry_dir: str, entry: Entry) -> None:
        super().write(os.path.join(entry_dir, "generation"), f"{entry.generation}\n".encode())

    def mkdir(self, path: str) -> None:
        if os.path.dirname(path) != str(self.root):
            raise _oserror(errno.EPERM)
        super().mkdir(path)
        self.created.append(path)
        self.entries[path] = Entry()
        attrs = {"provider": f"{self.provider}\n".encode(), "generation": b"0\n", "inblob": b"", "outblob": b""}
        attrs["auxblob"] = b"certificate table" if self.has_privlevel else b""
        if self.has_privlevel:
            attrs |= {"privlevel": b"", "privlevel_floor": f"{self.floor}\n".encode()}
        for name, data in attrs.items():
            (Path(path) / name).write_bytes(data)

    def rmdir(self, path: str) -> None:
        self.entries.pop(path)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        super().rmdir(path)

    def write(self, path: str, data: bytes) -> None:
        entry, attr = self._entry(path)
        if attr not in WRITABLE or not os.path.exists(path):
            raise _oserror(errno.EACCES)
        if attr == "inblob":
            if len(data) > 64:
                raise _oserror(errno.EINVAL)
            entry.inblob = data
        else:
            level = int(data.strip())
            if not self.floor <= level <= 3:
                raise _oserror(errno.EINVAL)
            entry.privlevel = level
        entry.writes.append(attr)
        super().write(path, data)
        entry.generation += 1
        self._set_generation(os.path.dirname(path), entry)

    def read(self, path: str) -> bytes:
        entry, attr = self._entry(path)
        if attr in WRITABLE:
            raise _oserror(errno.EACCES)
        if attr == "outblob":
            if entry.inblob is None:
                raise _oserror(errno.EINVAL)
            if entry.generated_at != entry.generation:
                data = bytes(64) if self.ignore_inblob else entry.inblob.ljust(64, b"\0")
                blob = self.template[: self.offset] + data + self.template[self.offset + 64 :]
                super().write(path, blob)
                entry.generated_at = entry.generation
            out = super().read(path)
            if self.interfere:
                self.interfere -= 1
                entry.inblob = b"another writer's nonce"
                entry.generation += 1
                self._set_generation(os.path.dirname(path), entry)
            return out
        return super().read(path)
