"""process.terminal: a pty from the container's own devpts.

The pty is opened by init after pivot_root, so it belongs to the container's
devpts instance (``newinstance``), never the host's. The slave becomes
stdin/stdout/stderr and the controlling terminal; the master travels to
whoever drives the console over ``--console-socket`` with SCM_RIGHTS — the
runc contract containerd and podman rely on (the message's data is the
device name, "/dev/ptmx", as runc sends it).
"""

from __future__ import annotations

import _socket
import fcntl
import os

from ...errors import InclavareError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...spec.model import Process
    from .launch import LaunchFds

TIOCSCTTY = 0x540E  # <asm-generic/ioctls.h>
TIOCSWINSZ = 0x5414


def setup(fds: LaunchFds, proc: Process) -> None:
    attach(fds.console_fd, proc)
    fds.console_fd = -1


def attach(console_fd: int, proc: Process) -> None:
    """Make a new pty our stdio and controlling terminal; send its master
    over `console_fd` (which is closed afterwards)."""
    if console_fd < 0:
        raise InclavareError("process.terminal is set but no --console-socket was given")
    master, slave = os.openpty()
    if proc.console_size is not None:
        size = proc.console_size
        fcntl.ioctl(slave, TIOCSWINSZ, _winsize(size.height, size.width))
    os.fchown(slave, proc.user.uid, -1)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, TIOCSCTTY, 0)
    os.close(slave)
    send_fd(console_fd, master, b"/dev/ptmx")
    os.close(master)
    os.close(console_fd)


def _winsize(rows: int, cols: int) -> bytes:
    return rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4)


def send_fd(sock_fd: int, fd: int, name: bytes) -> None:
    sock = _socket.socket(fileno=sock_fd)
    try:
        sock.sendmsg([name], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
    finally:
        sock.detach()


def connect(path: str) -> int:
    """A connected --console-socket, as a plain fd (it crosses fork into init)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InclavareError(f"--console-socket {path}: {exc.strerror}") from None
    return sock.detach()
