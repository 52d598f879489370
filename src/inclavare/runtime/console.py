"""The console of a foreground `rune run` with process.terminal set.

rune plays the part containerd plays for detached containers: it listens on a
private console socket, receives the pty master from init, puts its own
terminal in raw mode and copies bytes both ways until the container exits.
"""

from __future__ import annotations

import _socket
import os
import select
import tempfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


def recv_fd(sock: _socket.socket) -> int:
    """Receive one fd sent with SCM_RIGHTS (the --console-socket contract)."""
    _data, ancdata, _flags, _addr = sock.recvmsg(256, _socket.CMSG_LEN(4))
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return int.from_bytes(payload[:4], "little")
    raise OSError("console socket: no file descriptor received")


class ForegroundConsole:
    @classmethod
    def for_master(cls, master: int) -> ForegroundConsole:
        """A console for a pty master rune already holds (no socket involved)."""
        console = cls.__new__(cls)
        console.master = master
        console._copy_winsize()
        return console

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="rune-console-")
        self.socket_path = os.path.join(self._dir, "console.sock")
        self._listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._listener.bind(self.socket_path)
        self._listener.listen(1)
        self.master = -1

    def receive(self) -> None:
        # _socket, not socket (its import is not free): the C object's accept is _accept.
        conn, _ = self._listener._accept()  # type: ignore[attr-defined]  # typeshed has only socket.py's wrapper
        sock = _socket.socket(fileno=conn)
        try:
            self.master = recv_fd(sock)
        finally:
            sock.close()
            self.discard()
        self._copy_winsize()

    def discard(self) -> None:
        """Close and remove the socket and its directory (idempotent): after
        the pty arrived, or when the container never got to send it."""
        if self._listener.fileno() >= 0:
            self._listener.close()
        for remove, path in ((os.unlink, self.socket_path), (os.rmdir, self._dir)):
            try:
                remove(path)
            except FileNotFoundError:
                pass

    def _copy_winsize(self) -> None:
        import fcntl

        try:
            size = fcntl.ioctl(0, TIOCGWINSZ, bytes(8))
            fcntl.ioctl(self.master, TIOCSWINSZ, size)
        except OSError:
            pass  # stdin is not a terminal

    def pump_until_exit(self, pid: int) -> None:
        import _signal

        saved = _raw_mode(0)
        _signal.signal(28, lambda *_: self._copy_winsize())  # SIGWINCH
        try:
            self._pump()
        finally:
            if saved is not None:
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, saved)

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        stdin_open = True
        poller.register(0, select.POLLIN)
        while True:
            for fd, events in poller.poll():
                if fd == self.master:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: the last slave fd closed, the container is gone
                        return
                    if not data:
                        return
                    os.write(1, data)
                elif stdin_open:
                    data = os.read(0, 65536) if events & (select.POLLIN | select.POLLHUP) else b""
                    if data:
                        os.write(self.master, data)
                    else:
                        poller.unregister(0)
                        stdin_open = False


def _raw_mode(fd: int) -> list[Any] | None:
    import termios
    import tty

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    tty.setraw(fd)
    return saved
