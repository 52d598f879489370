"""A pump: copy one file descriptor into another in a thread until EOF.

The shim moves a process's output from the pipe (or pty master) the
process writes to into containerd's fifo, and containerd's stdin fifo into
the process, as the runc shim's copy goroutines do (pkg/process/io.go,
copyPipes). A pump polls its source and a wake-up pipe, so it sleeps until
there is data and :meth:`Pump.stop` can end it without closing a descriptor
another thread may be reading ("drain what is there, then stop": a process's
last output before it exited is not lost). Writes block: a slow reader slows
the process, as with runc. What the pump owns (``close``) it closes when it
ends, so containerd sees EOF on its fifo as soon as the process's side closed.
"""

from __future__ import annotations

import errno
import os
import select
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

CHUNK = 32 << 10
_END = (errno.EIO, errno.EBADF)  # a pty master reads EIO once every slave fd is closed (pty(7))


class Pump:
    def __init__(self, name: str, src: int, dst: int, close: Sequence[int] = (),
                 on_done: Callable[[bool], None] | None = None) -> None:  # fmt: skip
        """Copy `src` to `dst`; then close `close` and call ``on_done(eof)`` (False if stopped)."""
        self.name = name
        self.src = src
        self.dst = dst
        self._close = list(close)
        self._on_done = on_done
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"pump-{name}", daemon=True)

    def start(self) -> Pump:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Copy what `src` holds now, then end (idempotent)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # already ended and closed

    def join(self, timeout: float | None = None) -> bool:
        """Whether the pump has ended within `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        eof = False
        try:
            eof = self._copy()
        finally:
            for fd in (*self._close, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self._on_done is not None:
                self._on_done(eof)

    def _copy(self) -> bool:
        os.set_blocking(self.src, False)
        poller = select.poll()
        poller.register(self.src, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stopping, writable = False, True
        while True:
            ready = {fd for fd, _ in poller.poll(0 if stopping else None)}
            if self._wake_r in ready:
                stopping = True
                poller.unregister(self._wake_r)
            if self.src not in ready:
                if stopping:
                    return False
                continue
            try:
                data = os.read(self.src, CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in _END:
                    return True
                raise
            if not data:
                return True
            if writable:
                writable = self._write(data)

    def _write(self, data: bytes) -> bool:
        """Write all of `data`; False once `dst` refuses (the reader is gone: keep draining `src`)."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.dst, view) :]
            except BlockingIOError:
                select.select([], [self.dst], [])
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                    return False
                raise
        return True
