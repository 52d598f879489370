"""TDX and SEV-SNP guests: evidence through the Linux configfs-tsm report interface.

ABI (Linux Documentation/ABI/testing/configfs-tsm, v6.7+):
``mkdir /sys/kernel/config/tsm/report/$name`` creates a request instance
with the attributes ``inblob`` (WO, <= 64 bytes, becomes REPORT_DATA),
``outblob`` (RO, the provider's report: a TDX quote or an SNP report),
``auxblob`` (RO, e.g. the SNP certificate table), ``provider`` (RO, the
provider module: ``tdx_guest``, ``sev_guest``), ``generation`` (RO,
incremented by every write to inblob or an option) and, for providers that
have it, ``privlevel`` (WO, 0..3, the SNP VMPL) with ``privlevel_floor``.
``rmdir`` frees the instance.

The request sequence, one fresh entry per request (the ABI's advice against
concurrent writers), with the ABI's generation check against races::

    mkdir <root>/<name>
    read provider                      refuse a provider of another TEE before writing
    read generation            -> g
    write privlevel (optional) -> g+1  refused where the provider has no privlevel
    write inblob               -> g+1
    read outblob, auxblob (if present)
    read generation: must equal g      else another writer changed the inputs: retry
    rmdir <root>/<name>                always, also on errors

The file operations go through :class:`ConfigfsIO` (one ``write(2)`` per
attribute, as configfs wants); tests substitute a kernel-like fake over a
temporary directory. On a host without the interface the attester raises
:class:`~.interface.NotSupportedOnPlatform`.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..claims import Evidence, EvidenceKind, Tee
from ..errors import AttesterError, EvidenceFormatError, NotSupportedOnPlatform, TsmRace
from ..formats import detect
from ..report_data import check_report_data
from .interface import DEFAULT_TSM_ROOT, AttesterOptions
from .peek import claimed

PROVIDERS = {"tdx_guest": Tee.TDX, "sev_guest": Tee.SEV_SNP}  # tsm_report_ops.name = KBUILD_MODNAME
KINDS = {Tee.TDX: EvidenceKind.TDX_QUOTE, Tee.SEV_SNP: EvidenceKind.SNP_REPORT}
MAX_BLOB = 1 << 20  # the ABI caps outblob at 32 KiB today; leave room for certificate-carrying quotes
PRIVLEVEL_MAX = 3  # TSM_PRIVLEVEL_MAX
_T = TypeVar("_T")


@dataclass(frozen=True)
class TsmReport:
    """One configfs-tsm answer: the blobs, who produced them and at which generation."""

    outblob: bytes
    auxblob: bytes | None
    provider: str
    generation: int


class ConfigfsIO:
    """Attribute access the way configfs expects it: whole values, one write(2) each."""

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read(self, path: str) -> bytes:
        with open(path, "rb", buffering=0) as f:
            data = f.read(MAX_BLOB + 1)
        if len(data) > MAX_BLOB:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        return data

    def write(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)  # configfs commits binary attributes on release
        if written != len(data):
            raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)")


class TsmAttester:
    """A TDX or SEV-SNP guest's evidence through configfs-tsm."""

    def __init__(
        self,
        tee: Tee,
        root: str = DEFAULT_TSM_ROOT,
        *,
        privlevel: int | None = None,
        io: ConfigfsIO | None = None,
        attempts: int = 3,
    ) -> None:
        if tee not in KINDS:
            raise AttesterError(f"configfs-tsm attester: {tee.value} is not a configfs-tsm TEE (tdx, sev-snp)")
        if privlevel is not None and not 0 <= privlevel <= PRIVLEVEL_MAX:
            raise AttesterError(f"{tee.value} attester: privlevel must be 0..{PRIVLEVEL_MAX}, not {privlevel}")
        self.tee = tee
        self.name = tee.value
        self.root = root
        self.privlevel = privlevel
        self.io = io if io is not None else ConfigfsIO()
        self.attempts = max(1, attempts)

    def __repr__(self) -> str:
        return f"TsmAttester({self.name}, root={self.root!r})"

    def collect_evidence(self, report_data: bytes) -> Evidence:
        data = check_report_data(self.name, report_data)
        report = self.request(data)
        kind = KINDS[self.tee]
        try:
            found = detect(report.outblob)
            carried = claimed(Evidence(kind, report.outblob)).report_data if found == kind else None
        except EvidenceFormatError as exc:
            raise AttesterError(f"{self.name} attester: configfs-tsm outblob: {exc}") from None
        if found != kind:
            raise AttesterError(f"{self.name} attester: configfs-tsm outblob is a {found.value}, not a {kind.value}")
        if carried != data:
            raise AttesterError(f"{self.name} attester: configfs-tsm outblob does not carry the requested report data")
        return Evidence(kind, report.outblob)

    def request(self, inblob: bytes) -> TsmReport:
        """Run the whole configfs-tsm sequence once (retrying on generation races)."""
        if len(inblob) > 64:
            raise AttesterError(f"{self.name} attester: configfs-tsm inblob is at most 64 bytes")
        if not self.io.isdir(self.root):
            raise NotSupportedOnPlatform(
                self.name,
                f"no configfs-tsm report interface at {self.root} "
                "(needs a TDX or SEV-SNP guest, Linux 6.7+ and configfs mounted)",
            )
        entry = os.path.join(self.root, f"inclavare-{os.getpid()}-{secrets.token_hex(6)}")
        self._call("mkdir", entry, self.io.mkdir)
        try:
            return self._request(entry, inblob)
        finally:
            self._call("rmdir", entry, self.io.rmdir)

    def _request(self, entry: str, inblob: bytes) -> TsmReport:
        provider = self._read(entry, "provider").decode("ascii", "replace").strip()
        tee = PROVIDERS.get(provider.replace("-", "_"))
        if tee != self.tee:
            shown = tee.value if tee is not None else "unknown"
            raise AttesterError(
                f"{self.name} attester: configfs-tsm provider is {provider!r} ({shown}), not {self.name}"
            )
        seen = []
        for _ in range(self.attempts):
            expected = self._generation(entry)
            if self.privlevel is not None:
                self._write_privlevel(entry, self.privlevel)
                expected += 1
            self._write(entry, "inblob", inblob)
            expected += 1
            outblob = self._read(entry, "outblob")
            auxblob = self._read(entry, "auxblob") if self.io.exists(os.path.join(entry, "auxblob")) else None
            generation = self._generation(entry)
            if generation == expected:
                return TsmReport(outblob, auxblob, provider, generation)
            seen.append(f"{expected}->{generation}")
        raise TsmRace(
            f"{self.name} attester: configfs-tsm {os.path.basename(entry)}: generation changed while reading "
            f"in all {self.attempts} attempts (expected->read: {', '.join(seen)}); another process writes this entry"
        )

    def _write_privlevel(self, entry: str, level: int) -> None:
        if not self.io.exists(os.path.join(entry, "privlevel")):
            raise AttesterError(f"{self.name} attester: configfs-tsm provider has no privlevel")
        if self.io.exists(os.path.join(entry, "privlevel_floor")):
            floor = self._integer(entry, "privlevel_floor")
            if level < floor:
                raise AttesterError(f"{self.name} attester: privlevel {level} is below the floor {floor}")
        self._write(entry, "privlevel", f"{level}\n".encode())

    def _generation(self, entry: str) -> int:
        return self._integer(entry, "generation")

    def _integer(self, entry: str, attribute: str) -> int:
        raw = self._read(entry, attribute).strip()
        if not raw.isdigit():
            raise AttesterError(f"{self.name} attester: configfs-tsm {attribute} is not a number: {raw[:20]!r}")
        return int(raw)

    def _read(self, entry: str, attribute: str) -> bytes:
        path = os.path.join(entry, attribute)
        return self._call("read", path, self.io.read)

    def _write(self, entry: str, attribute: str, data: bytes) -> None:
        path = os.path.join(entry, attribute)
        self._call("write", path, lambda p: self.io.write(p, data))

    def _call(self, op: str, path: str, fn: Callable[[str], _T]) -> _T:
        try:
            return fn(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise AttesterError(f"{self.name} attester: configfs-tsm {op} {path}: {reason}") from None


def tdx_from_options(options: AttesterOptions) -> TsmAttester:
    return TsmAttester(Tee.TDX, options.tsm_root, privlevel=options.privlevel)


def snp_from_options(options: AttesterOptions) -> TsmAttester:
    return TsmAttester(Tee.SEV_SNP, options.tsm_root, privlevel=options.privlevel)
