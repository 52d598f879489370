"""Applying layer tar streams to a rootfs: safely, with whiteouts, owners and modes.

Ref: OCI image-spec layer.md ("Applying Changesets", "Whiteouts"):

- ``.wh.<name>`` removes ``<name>`` from the *lower* layers; ``.wh..wh..opq``
  makes its directory opaque (children from lower layers are removed). A
  whiteout never hides what the same layer adds, whatever the entry order;
  entries are keyed by (parent directory inode, name) so a path reached
  through a symlinked parent is still recognised. Other ``.wh..wh.`` names
  (aufs metadata such as ``.wh..wh.plnk``) are skipped. Whiteouts are never
  materialised.
- An entry replaces what is at its path, except directory over directory,
  which merges.

Headers are parsed by :mod:`.tarstream` (strict: every malformed header is
an error). Every write is an ``*at`` call relative to an fd from
:class:`~inclavare.image.rootfs.RootFS` (parents resolved in-root, final
components never followed, regular files created ``O_EXCL|O_NOFOLLOW``),
so absolute names, ``..``, and symlinks or hard links aimed outside cannot
touch anything outside the rootfs. Owners (numeric uid/gid), modes
(including setuid/setgid/sticky, applied after chown) and mtimes are kept.
Without root (``rootless``), ownership is left to the caller and device
nodes are skipped and reported.

Extended attributes (``SCHILY.xattr.*`` pax records) are filtered. Kept:
what containers/storage itself writes into layers (``user.*``,
``security.capability``, ``security.ima``; pkg/archive
``readSecurityXattrToTarHeader``, ``readUserXattrToTarHeader``) and POSIX
ACLs (``system.posix_acl_access``/``_default``, permission bits like the
mode). Dropped unless asked for (``privileged_xattrs``,
``--keep-privileged-xattrs``), one warning per layer and name: ``trusted.*``
(overlayfs' own metadata: ``trusted.overlay.redirect``, ``.opaque``,
``.metacopy`` steer an overlay mount of the rootfs to other lower files)
and every other ``security.*`` (LSM labels such as ``security.selinux`` are
the host policy's to assign, not the image's; containers/storage drops
``security.selinux`` too); anything else too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import one_line
from .errors import UnsafeArchive
from .rootfs import RootFS, components
from .tarstream import Entry, TarReader

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20
KEPT_XATTRS = ("security.capability", "security.ima", "system.posix_acl_access", "system.posix_acl_default")


def xattr_kept(name: str, privileged: bool) -> bool:
    """Is the layer's xattr `name` applied? (See the module docstring.)"""
    return privileged or name.startswith("user.") or name in KEPT_XATTRS


@dataclass
class Report:
    """What was applied, and what could not be (never an error: reported to the user)."""

    entries: int = 0
    whiteouts: int = 0
    skipped: list[str] = field(default_factory=list)


class LayerApplier:
    """Applies layers, lowest first, to one rootfs."""

    def __init__(self, rootfs: str, rootless: bool | None = None, privileged_xattrs: bool = False) -> None:
        self.root = RootFS(rootfs)
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.privileged_xattrs = privileged_xattrs
        self.report = Report()

    def close(self) -> None:
        self.root.close()

    def apply(self, stream: Any, where: str) -> None:
        """Apply one uncompressed layer tar read from `stream` (``read(n)``)."""
        self._added: set[tuple[int, int, str]] = set()
        self._dirs: list[tuple[list[str], Entry]] = []
        self._dropped: dict[str, int] = {}
        tar = TarReader(stream, where)
        for member in tar:
            self._entry(tar, member, where)
        for parts, member in reversed(self._dirs):  # children first: their writes would bump mtimes
            self._finish_dir(parts, member, where)
        for name, count in sorted(self._dropped.items()):
            self.report.skipped.append(
                one_line(f"{where}: xattr {name} dropped from {count} entries (--keep-privileged-xattrs applies it)")
            )

    def _entry(self, tar: TarReader, m: Entry, where: str) -> None:
        parts = components(m.name, where)
        self.report.entries += 1
        if not parts:
            if m.kind == "dir":
                self._dirs.append((parts, m))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT):
            self._whiteout(parts, where)
            return
        dirfd = self.root.open_dir(parts[:-1], where, create=True)
        try:
            self._place(tar, m, dirfd, base, parts, where)
            st = os.stat(".", dir_fd=dirfd)
            self._added.add((st.st_dev, st.st_ino, base))
        except OSError as exc:
            raise UnsafeArchive(where, m.name[:120], f"cannot create ({exc.strerror})") from None
        finally:
            os.close(dirfd)

    def _place(self, tar: TarReader, m: Entry, dirfd: int, base: str, parts: list[str], where: str) -> None:
        old = self.root.lstat(dirfd, base)
        if old is not None and not (m.kind == "dir" and stat.S_ISDIR(old.st_mode)):
            self.root.remove(dirfd, base)
        if m.kind == "dir":
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(base, 0o700, dir_fd=dirfd)
            self._xattrs_at(dirfd, base, m)
            self._dirs.append((parts, m))  # mode, owner and times once the layer is done
        elif m.kind == "file":
            self._file(tar, m, dirfd, base)
        elif m.kind == "symlink":
            os.symlink(m.linkname, base, dir_fd=dirfd)
            self._meta(dirfd, base, m, symlink=True)
        elif m.kind == "hardlink":
            self._hardlink(m, dirfd, base, where)
        elif m.kind == "fifo":
            os.mkfifo(base, 0o600, dir_fd=dirfd)
            self._meta(dirfd, base, m)
        else:  # chr, blk: tarstream returns no other kind
            self._device(m, dirfd, base)

    def _file(self, tar: TarReader, m: Entry, dirfd: int, base: str) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
        try:
            while chunk := tar.read(_CHUNK):
                _write_all(fd, chunk)
            if not self.rootless:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
            self._xattrs_fd(fd, m)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def _hardlink(self, m: Entry, dirfd: int, base: str, where: str) -> None:
        target = components(m.linkname, where + ": hard link target")
        if not target:
            raise UnsafeArchive(where, m.name[:120], "hard link to the rootfs itself")
        srcdir = self.root.open_dir(target[:-1], where)
        try:
            st = self.root.lstat(srcdir, target[-1])
            if st is None or stat.S_ISDIR(st.st_mode):
                raise UnsafeArchive(
                    where, m.name[:120], f"hard link target {m.linkname[:120]!r} is missing or a directory"
                )
            os.link(target[-1], base, src_dir_fd=srcdir, dst_dir_fd=dirfd, follow_symlinks=False)
        finally:
            os.close(srcdir)

    def _device(self, m: Entry, dirfd: int, base: str) -> None:
        kind = stat.S_IFCHR if m.kind == "chr" else stat.S_IFBLK
        if self.rootless:
            self.report.skipped.append(one_line(f"{m.name}: device node skipped (not root)"))
            return
        try:
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dirfd)
        except PermissionError:
            self.report.skipped.append(one_line(f"{m.name}: device node skipped (mknod not permitted)"))
            return
        self._meta(dirfd, base, m)

    def _meta(self, dirfd: int, base: str, m: Entry, symlink: bool = False) -> None:
        if not self.rootless:
            os.chown(base, m.uid, m.gid, dir_fd=dirfd, follow_symlinks=False)
        if not symlink:  # we just made `base` and it is not a symlink: chmod cannot be redirected
            os.chmod(base, m.mode & 0o7777, dir_fd=dirfd)
        os.utime(base, ns=(m.mtime_ns, m.mtime_ns), dir_fd=dirfd, follow_symlinks=False)

    def _finish_dir(self, parts: list[str], m: Entry, where: str) -> None:
        if not parts:
            fd = os.dup(self.root.fd)
            base = "."
        else:
            fd, base = self.root.open_dir(parts[:-1], where), parts[-1]
        try:
            st = self.root.lstat(fd, base)
            if st is not None and stat.S_ISDIR(st.st_mode):  # a later entry may have replaced it
                self._meta(fd, base, m)
        finally:
            os.close(fd)

    def _whiteout(self, parts: list[str], where: str) -> None:
        self.report.whiteouts += 1
        base = parts[-1]
        try:
            dirfd = self.root.open_dir(parts[:-1], where)
        except UnsafeArchive:
            return  # nothing below to hide
        try:
            st = os.stat(".", dir_fd=dirfd)
            key = (st.st_dev, st.st_ino)
            if base == OPAQUE:
                for child in self.root.listdir(dirfd):
                    if (*key, child) not in self._added:
                        self.root.remove(dirfd, child)
            elif base.startswith(WHITEOUT + WHITEOUT):
                self.report.skipped.append(one_line(f"{'/'.join(parts)}: aufs metadata ignored"))
            else:
                name = base[len(WHITEOUT) :]
                if name in ("", ".", ".."):
                    raise UnsafeArchive(where, "/".join(parts), f"a whiteout must name an entry, not {name!r}")
                if (*key, name) not in self._added:
                    self.root.remove(dirfd, name)
        finally:
            os.close(dirfd)

    def _xattrs(self, m: Entry) -> list[tuple[str, bytes]]:
        kept = []
        for name, value in m.xattrs.items():
            if xattr_kept(name, self.privileged_xattrs):
                kept.append((name, value))
            else:
                self._dropped[name] = self._dropped.get(name, 0) + 1
        return kept

    def _xattrs_fd(self, fd: int, m: Entry) -> None:
        for name, value in self._xattrs(m):
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                self.report.skipped.append(one_line(f"{m.name}: xattr {name} not set ({exc.strerror})"))

    def _xattrs_at(self, dirfd: int, base: str, m: Entry) -> None:
        if not m.xattrs:
            return
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            self._xattrs_fd(fd, m)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
