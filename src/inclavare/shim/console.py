"""A process's stdio through a terminal: the pty master rune sends back, pumped to containerd.

With ``terminal`` set, rune makes the pty in the container and sends its
master over ``--console-socket`` with SCM_RIGHTS (runc's
docs/terminals.md; rune's runtime/process/terminal.py). The shim listens
on a socket in a fresh 0700 directory, runs rune, receives the master and
pumps it to containerd's stdout fifo, and the stdin fifo into it (the pty
carries stderr too), as the runc shim does (pkg/process/init.go Create,
runtime/v2/runc/platform.go CopyConsole). When the stdin fifo reaches EOF
(CloseIO) the console is shut down, as upstream; when the process exits,
what it wrote is drained and the output pump ends even if something it left
behind still holds the terminal (upstream's ShutdownConsole).
"""

from __future__ import annotations

import array
import os
import socket
import threading

from .errors import ShimError
from .pump import Pump
from .stdio import Stdio, open_output, open_stdin

RECEIVE_TIMEOUT = 30.0  # upstream's context timeout around socket.ReceiveMaster


class ConsoleSocket:
    """The listening end of ``--console-socket``."""

    def __init__(self) -> None:
        base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"  # where go-runc's NewTempConsoleSocket makes it
        self.dir = os.path.join(base, f"pty{os.urandom(6).hex()}")
        os.mkdir(self.dir, 0o700)
        self.path = os.path.join(self.dir, "pty.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive_master(self, timeout: float = RECEIVE_TIMEOUT) -> int:
        """The pty master rune sent (call after rune succeeded: the connection is queued by then)."""
        self.sock.settimeout(timeout)
        try:
            conn, _ = self.sock.accept()
        except OSError as exc:
            raise ShimError(f"failed to retrieve console master: {exc}") from None
        with conn:
            conn.settimeout(timeout)
            fds = array.array("i")
            try:
                _data, ancdata, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize),
                                                             socket.MSG_CMSG_CLOEXEC)  # fmt: skip
            except OSError as exc:
                raise ShimError(f"failed to retrieve console master: {exc}") from None
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if not fds:
            raise ShimError("failed to retrieve console master: no file descriptor on the console socket")
        for extra in fds[1:]:
            os.close(extra)
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        for remove in (lambda: os.unlink(self.path), lambda: os.rmdir(self.dir)):
            try:
                remove()
            except OSError:
                pass


class TerminalIO:
    """The stdio of one process that has a terminal."""

    scheme = "terminal"

    def __init__(self, stdio: Stdio) -> None:
        self.stdio = stdio
        self.socket = ConsoleSocket()
        self.master = -1
        self._holder = -1
        self._out: Pump | None = None
        self._in: Pump | None = None
        self._lock = threading.Lock()

    def child_fds(self) -> None:
        """None: rune's own output is captured (the process gets the pty, not these)."""
        return None

    def started(self) -> None:
        """After rune succeeded: take the master and pump it to and from containerd's fifos."""
        try:
            self.master = self.socket.receive_master()
        finally:
            self.socket.close()
        if self.stdio.stdout:
            dst = open_output(self.stdio.stdout)
            self._out = Pump("console-out", self.master, dst, close=(dst,)).start()
        if self.stdio.stdin:
            reader, self._holder = open_stdin(self.stdio.stdin)
            self._in = Pump("console-in", reader, self.master, close=(reader,), on_done=self._stdin_done).start()

    def _stdin_done(self, eof: bool) -> None:
        if eof:  # CloseIO and the client closed: shut the console down (platform.go CopyConsole)
            self.process_exited()

    def resize(self, width: int, height: int) -> None:
        import fcntl
        import struct
        import termios

        with self._lock:
            if self.master >= 0:
                # struct winsize {rows, cols, xpixel, ypixel} (ioctl_tty(2) TIOCSWINSZ)
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def close_stdin(self) -> None:
        with self._lock:
            if self._holder >= 0:
                os.close(self._holder)
                self._holder = -1

    def process_exited(self) -> None:
        if self._out is not None:
            self._out.stop()

    def wait(self, timeout: float) -> bool:
        return self._out is None or self._out.join(timeout)

    def close(self) -> None:
        for pump in (self._out, self._in):
            if pump is not None:
                pump.stop()
                pump.join(1.0)
        self.socket.close()
        self.close_stdin()
        with self._lock:
            if self.master >= 0:
                os.close(self.master)
                self.master = -1
