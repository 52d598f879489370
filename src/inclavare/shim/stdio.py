"""A process's stdio without a terminal: pipes to the process, pumps to containerd.

containerd names where a process's stdio goes (CreateTaskRequest /
ExecProcessRequest stdin, stdout, stderr), as the runc shim reads them
(pkg/process/io.go, createIO and copyPipes):

* all three empty: the process gets /dev/null (runc.NewNullIO);
* a path, or ``fifo://`` (the default scheme): the process gets a pipe per
  named stream (``/dev/null`` for an empty one) and the shim pumps between
  the pipe and the fifo (or, for a path that is not a fifo, appends to that
  file); containerd's client holds the other end of each fifo;
* ``file:///path``: stdout and stderr appended to that file (created 0644);
* ``binary:///path?key=value``: a logging binary started with the process's
  stdout and stderr pipes as fds 3 and 4 and a ready pipe as fd 5, in an
  environment of CONTAINER_ID and CONTAINER_NAMESPACE only; it is sent
  SIGTERM when the process is deleted (and SIGKILL 12 s later).

The pipes are chowned to the options' IoUid/IoGid, so a process whose root
is mapped to another host uid (user namespaces) can reopen them.

Order, as upstream: :meth:`PipeIO.child_fds` for the `rune` command, then
:meth:`PipeIO.started` once rune succeeded (opens containerd's fifos and
starts the pumps). The shim also keeps stdin's fifo open for writing itself,
so that the process sees EOF only when containerd says so (CloseIO), not
whenever a client detaches.
"""

from __future__ import annotations

import os
import stat

from .errors import InvalidArgument, ShimError
from .pump import Pump

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .reaper import Reaper

BINARY_TERM_TIMEOUT = 12.0  # upstream's binaryIOProcTermTimeout: the logger's time to flush


class Stdio:
    """Where containerd wants a process's stdio (paths or URIs, "" for none)."""

    __slots__ = ("stderr", "stdin", "stdout", "terminal")

    def __init__(self, stdin: str = "", stdout: str = "", stderr: str = "", terminal: bool = False) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal

    @property
    def is_null(self) -> bool:
        return not (self.stdin or self.stdout or self.stderr)

    def scheme(self) -> str:
        """stdout's URI scheme: fifo (also for a plain path), file or binary; anything else is refused."""
        scheme, sep, _ = self.stdout.partition("://")
        scheme = scheme if sep else "fifo"
        if scheme not in ("fifo", "file", "binary"):
            raise InvalidArgument(f"unknown STDIO scheme {scheme}")
        return scheme


def open_output(path: str) -> int:
    """A descriptor to write a process's output to `path`: containerd's fifo, or a file to append to.

    A fifo is opened read-write: that never blocks on a reader that is not
    there yet, and keeps the fifo alive if its reader comes and goes (upstream
    opens a writer and a reader for the same reason)."""
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode):
            return os.open(path, os.O_RDWR)
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise ShimError(f"containerd-shim: opening {path} failed: {exc.strerror}") from None


def open_stdin(path: str) -> tuple[int, int]:
    """(reader for the pump, the shim's own writer that holds EOF back until CloseIO)."""
    try:
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        holder = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ShimError(f"failed to open stdin fifo {path}: {exc.strerror}") from None
    return reader, holder


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class PipeIO:
    """The stdio of one process that has no terminal."""

    def __init__(self, stdio: Stdio, uid: int = 0, gid: int = 0) -> None:
        self.stdio = stdio
        self.uid, self.gid = uid, gid
        self.scheme = "null" if stdio.is_null else stdio.scheme()
        self._devnull = os.open(os.devnull, os.O_RDWR)
        self._child = [self._devnull] * 3  # what the process gets as fds 0, 1, 2
        self._ours = [-1, -1, -1]  # our end of each pipe
        self._holder = -1
        self._pumps: list[Pump] = []
        self._logger_pid = 0
        self._reaper: Reaper | None = None
        self._closed = False
        if self.scheme == "null":
            return
        wanted = (bool(stdio.stdin) and self.scheme != "binary", bool(stdio.stdout), bool(stdio.stderr))
        for i, want in enumerate(wanted):
            if want:
                r, w = os.pipe()
                for fd in (r, w):
                    os.fchown(fd, uid, gid)
                self._child[i], self._ours[i] = (r, w) if i == 0 else (w, r)

    def child_fds(self) -> tuple[int, int, int]:
        """fds 0, 1, 2 for the `rune create`/`rune exec` that starts the process."""
        return self._child[0], self._child[1], self._child[2]

    def start_logger(self, reaper: Reaper, container_id: str, namespace: str) -> None:
        """binary:// only, before rune runs: start the logging binary and wait until it is ready."""
        if self.scheme != "binary":
            return
        from urllib.parse import parse_qsl, urlsplit

        uri = urlsplit(self.stdio.stdout)
        args = [a for kv in parse_qsl(uri.query, keep_blank_values=True) for a in kv if a]
        ready_r, ready_w = os.pipe()
        env = {"CONTAINER_ID": container_id, "CONTAINER_NAMESPACE": namespace}
        try:
            self._logger_pid = reaper.spawn([uri.path, *args], self._devnull, self._devnull, self._devnull, env=env,
                                            extra_fds=(self._ours[1], self._ours[2], ready_w))  # fmt: skip
            self._reaper = reaper
            os.close(ready_w)
            ready_w = -1
            os.read(ready_r, 1)  # a byte or EOF: the logger holds its ends (upstream waits the same way)
        finally:
            _close(ready_r, ready_w)
        _close(self._ours[1], self._ours[2])  # the logger's now
        self._ours[1] = self._ours[2] = -1

    def started(self) -> None:
        """After rune succeeded: drop the process's ends, open containerd's side, start the pumps."""
        child = {fd for fd in self._child if fd != self._devnull}
        _close(*child)
        self._child = [self._devnull] * 3
        if self.scheme in ("fifo", "file"):
            self._pump_outputs()
        if self._ours[0] >= 0:
            reader, self._holder = open_stdin(self.stdio.stdin)
            self._pumps.append(Pump("stdin", reader, self._ours[0], close=(reader, self._ours[0])).start())
            self._ours[0] = -1

    def _pump_outputs(self) -> None:
        paths = [self.stdio.stdout, self.stdio.stderr]
        if self.scheme == "file":
            from urllib.parse import urlsplit

            path = urlsplit(self.stdio.stdout).path
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            _close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
            paths = [path, path]
        for i, name in ((1, "stdout"), (2, "stderr")):
            if self._ours[i] >= 0:
                dst = open_output(paths[i - 1])
                self._pumps.append(Pump(name, self._ours[i], dst, close=(self._ours[i], dst)).start())
                self._ours[i] = -1

    def resize(self, width: int, height: int) -> None:
        """No terminal, nothing to resize (the runc shim ignores it too)."""

    def close_stdin(self) -> None:
        """CloseIO: the process reads EOF once containerd's client has closed too."""
        _close(self._holder)
        self._holder = -1

    def process_exited(self) -> None:
        """Nothing to do: the pipes reach EOF when the process (and what it left) closes them."""

    def wait(self, timeout: float) -> bool:
        """Whether every output pump reached EOF within `timeout` seconds."""
        return all(p.join(timeout) for p in self._pumps if p.name != "stdin")

    def close(self) -> None:
        """Stop the pumps, close every descriptor, stop the logging binary (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for p in self._pumps:
            p.stop()
        for p in self._pumps:
            p.join(1.0)
        _close(self._holder, *self._ours, *(fd for fd in self._child if fd != self._devnull), self._devnull)
        self._holder = -1
        self._ours = [-1, -1, -1]
        if self._logger_pid and self._reaper is not None:
            self._stop_logger(self._reaper, self._logger_pid)
            self._logger_pid = 0

    @staticmethod
    def _stop_logger(reaper: Reaper, pid: int) -> None:
        import signal

        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if reaper.wait(pid, BINARY_TERM_TIMEOUT) is None:
            os.kill(pid, signal.SIGKILL)
            reaper.wait(pid)
