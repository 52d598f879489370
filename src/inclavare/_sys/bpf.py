"""bpf(2): load, attach, query and detach cgroup programs (x86-64).

Only what cgroup v2 device control needs (cgroup-v2.rst "Device controller";
runc libcontainer/cgroups/devices/ebpf_linux.go, crun ebpf.c):
BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program, BPF_PROG_ATTACH with
BPF_F_ALLOW_MULTI (so a parent's programs keep applying: every attached
program must allow), BPF_PROG_QUERY and BPF_PROG_DETACH to replace what an
earlier apply attached. ``union bpf_attr`` members are mirrored field by field
from include/uapi/linux/bpf.h; the kernel zero-fills the rest of the union
when a shorter size is passed. Since Linux 5.11 programs are charged to the
memory cgroup, not RLIMIT_MEMLOCK, so no rlimit is raised here.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ..errors import SyscallError

_SYS_BPF = 321  # arch/x86/entry/syscalls/syscall_64.tbl

# enum bpf_cmd
PROG_LOAD, PROG_ATTACH, PROG_DETACH, PROG_GET_FD_BY_ID, PROG_QUERY = 5, 8, 9, 13, 16
PROG_TYPE_CGROUP_DEVICE = 15  # enum bpf_prog_type
CGROUP_DEVICE = 6  # enum bpf_attach_type: BPF_CGROUP_DEVICE
F_ALLOW_MULTI = 2  # BPF_F_ALLOW_MULTI
_LOG_SIZE = 1 << 16


class _ProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32), ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16), ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]  # fmt: skip


class _Attach(ctypes.Structure):  # BPF_PROG_ATTACH / BPF_PROG_DETACH
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]  # fmt: skip


class _Query(ctypes.Structure):  # BPF_PROG_QUERY
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
    ]  # fmt: skip


class _GetFdById(ctypes.Structure):  # BPF_PROG_GET_FD_BY_ID
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Structure) -> tuple[int, int]:
    """(return value, errno) of bpf(cmd, &attr, sizeof attr)."""
    ret = _syscall(ctypes.c_long(_SYS_BPF), ctypes.c_long(cmd), ctypes.byref(attr), ctypes.c_ulong(ctypes.sizeof(attr)))
    return int(ret), (ctypes.get_errno() if ret < 0 else 0)


def load_device_program(insns: bytes, name: str = "rune_devices") -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd (O_CLOEXEC).

    On failure the load is repeated with the verifier log enabled, and the
    error carries the log's last line (what the verifier objected to).
    """
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")  # the program calls no helper, but the kernel wants one
    attr = _ProgLoad(prog_type=PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(insns) // 8,
                     insns=ctypes.addressof(code), license=ctypes.addressof(license_),
                     prog_name=name.encode()[:15])  # fmt: skip
    fd, err = _bpf(PROG_LOAD, attr)
    if fd >= 0:
        return fd
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, _LOG_SIZE, ctypes.addressof(log)
    fd, log_err = _bpf(PROG_LOAD, attr)
    if fd >= 0:  # loaded the second time: report nothing
        return fd
    lines = log.value.decode(errors="replace").strip().splitlines()
    verifier = f": verifier: {lines[-1]}" if lines and log_err != errno.ENOSPC else ""
    detail = f"{len(insns) // 8} instructions" + verifier
    raise SyscallError("bpf(BPF_PROG_LOAD) of the device program", err, detail)


def attach(cgroup_fd: int, prog_fd: int, attach_type: int = CGROUP_DEVICE, flags: int = F_ALLOW_MULTI) -> None:
    ret, err = _bpf(PROG_ATTACH, _Attach(cgroup_fd, prog_fd, attach_type, flags, 0))
    if ret < 0:
        raise SyscallError("bpf(BPF_PROG_ATTACH)", err)


def detach(cgroup_fd: int, prog_fd: int, attach_type: int = CGROUP_DEVICE) -> None:
    ret, err = _bpf(PROG_DETACH, _Attach(cgroup_fd, prog_fd, attach_type, 0, 0))
    if ret < 0 and err != errno.ENOENT:  # detached meanwhile
        raise SyscallError("bpf(BPF_PROG_DETACH)", err)


def query(cgroup_fd: int, attach_type: int = CGROUP_DEVICE) -> list[int]:
    """Ids of the programs attached directly to the cgroup (not inherited ones)."""
    count = 64
    while True:
        ids = (ctypes.c_uint32 * count)()
        attr = _Query(target_fd=cgroup_fd, attach_type=attach_type, prog_ids=ctypes.addressof(ids), prog_cnt=count)
        ret, err = _bpf(PROG_QUERY, attr)
        if ret == 0:
            return list(ids[: attr.prog_cnt])
        if err != errno.ENOSPC or count >= 1 << 16:
            raise SyscallError("bpf(BPF_PROG_QUERY)", err)
        count *= 4


def program_fd(prog_id: int) -> int | None:
    """An fd for an attached program by id; None if it is gone."""
    fd, err = _bpf(PROG_GET_FD_BY_ID, _GetFdById(prog_id, 0, 0))
    if fd >= 0:
        return fd
    if err == errno.ENOENT:
        return None
    raise SyscallError("bpf(BPF_PROG_GET_FD_BY_ID)", err, str(prog_id))


def replace_device_program(cgroup_dir: str, insns: bytes) -> None:
    """Attach `insns` to a cgroup2 directory, then detach what was attached
    there before (attach first: the cgroup is never left without a filter)."""
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = query(dir_fd)
        prog = load_device_program(insns)
        try:
            attach(dir_fd, prog)
        finally:
            os.close(prog)  # the attachment holds its own reference
        for prog_id in old:
            fd = program_fd(prog_id)
            if fd is not None:
                try:
                    detach(dir_fd, fd)
                finally:
                    os.close(fd)
    finally:
        os.close(dir_fd)
