"""A wasm process's stdio and its ``poll_oneoff``: the exact fds it was handed, and stoppable.

wasmtime's ``WasiConfig`` takes stdio as host *paths* or "inherit this
process's 0/1/2" — neither is "these three fds of the caller", and several
modules run in one process, each with its own stdio. Reopening the caller's
fds through ``/proc/self/fd/N`` would give a regular file a fresh offset
and, for stdout, O_TRUNC (wasmtime creates output files). Its
``stdout_custom`` callbacks run on wasmtime's tokio worker threads; a
Python callback there can run during interpreter shutdown, where CPython
ends the thread with pthread_exit and the forced unwind through Rust frames
aborts the process (measured: "panic in a function that cannot unwind").

So each stream is a pipe of our own, which wasmtime opens through
``/proc/self/fd/N`` (the container's /proc is mounted; a FIFO ignores
O_TRUNC, fifo(7)), and one pump thread per process moves bytes between the
pipes and the caller's fds, with poll(2), in chunks of at most PIPE_BUF
(pipe(7)) so that no write blocks it. The caller's fds are read and written
themselves: same offsets, same O_APPEND. The pump also makes a kill
prompt: on a stop it closes stdin (a module blocked reading it sees end of
file) and swallows output (a module blocked writing to a full pipe goes on),
so the module reaches an epoch check. When the module ends normally,
everything it wrote is delivered before ``wait`` returns; stdin may have
been read up to 64 KiB ahead of what the module consumed, as by any buffered
reader. ``/dev/null`` as stdin needs no pipe: wasmtime's default stdin is
empty.

``poll_oneoff`` (WASI preview 1; how wasi-libc sleeps) is replaced by
:meth:`Stdio.poll_oneoff`, which waits in poll(2) on the caller's stdout
and stderr fds, the clocks *and* the process's stop eventfd, so a sleeping
module is killed promptly too. wasmtime reads stdin ahead from its pipe
(measured), so nothing outside wasmtime knows what the module could read:
fd 0 is reported readable at once, and a read then blocks until data, end
of file or a stop — a module that waits for "input or timeout" waits for
input. Other fds (files) are ready at once, as regular files are in poll(2).
A host call that wasmtime itself blocks in (a read of a FIFO opened inside
a preopened directory) is not covered: such a module stops when the call
returns. Host functions here never raise: wasmtime-py keeps the exception
of a failing host function in one process-wide slot, shared by all threads.
"""

from __future__ import annotations

import os
import select
import stat
import struct
import threading
import time

import wasmtime

from . import _base

PIPE_BUF = 4096  # pipe(7): a write of up to this size fits once POLLOUT is reported
_CHUNK = 64 << 10
_DEV_NULL = os.makedev(1, 3)  # Documentation/admin-guide/devices.txt: mem 3 = /dev/null

# WASI preview 1 (wasi_snapshot_preview1.witx; offsets as in wasi-libc's <wasi/api.h>)
ERRNO_SUCCESS, ERRNO_BADF, ERRNO_FAULT, ERRNO_INTR, ERRNO_INVAL, ERRNO_IO = 0, 8, 21, 27, 28, 29
EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE = 0, 1, 2
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
SUBCLOCKFLAGS_ABSTIME = 1
EVENTRWFLAGS_HANGUP = 1
SUBSCRIPTION_SIZE, EVENT_SIZE = 48, 32
_SUB_HEAD = struct.Struct("<QB")  # userdata @0, u.tag @8
_SUB_CLOCK = struct.Struct("<I4xQQH")  # @16: id, @24 timeout (ns), @32 precision, @40 flags
_SUB_FD = struct.Struct("<I")  # @16: file_descriptor
_EVENT = struct.Struct("<QHBxxxxxQH6x")  # userdata, error, type, fd_readwrite.nbytes @16, .flags @24


class _Flow:
    """Bytes from `src` to `dst` (-1 once closed); `discard`: read and drop."""

    __slots__ = ("buf", "discard", "dst", "src", "step")

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.buf = b""
        self.discard = False
        self.step = _CHUNK if stat.S_ISREG(os.fstat(dst).st_mode) else PIPE_BUF


class Stdio:
    """The stdio of one wasm process: pipes for wasmtime, a pump to the caller's fds."""

    def __init__(self, fds: tuple[int, int, int], stop_fd: int) -> None:
        self.fds = fds
        self.stop_fd = stop_fd  # eventfd: readable once the process is to stop
        # wasmtime's WASI monotonic clock counts from when the store's WASI
        # context was made, not from boot (measured); set right before Store.set_wasi.
        self.clock_origin = time.monotonic_ns()
        self._open: set[int] = set()
        self._pump: threading.Thread | None = None
        try:
            self._ended = os.eventfd(0, os.EFD_CLOEXEC)  # readable once the module ended
            self._open.add(self._ended)
            self._in = None if _is_dev_null(fds[0]) else self._pipe()
            self._out, self._err = self._pipe(), self._pipe()
        except BaseException:  # EMFILE: give back what was opened
            for fd in list(self._open):
                self._close(fd)
            raise

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self._open.update((r, w))
        return r, w

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def configure(self, wasi: wasmtime.WasiConfig) -> None:
        """Point the WASI configuration at the pipes (wasmtime opens them at once)."""
        if self._in is not None:
            wasi.stdin_file = f"/proc/self/fd/{self._in[0]}"
        wasi.stdout_file = f"/proc/self/fd/{self._out[1]}"
        wasi.stderr_file = f"/proc/self/fd/{self._err[1]}"
        # wasmtime holds its own open file descriptions now; ours of the write
        # ends must go, or the pump would never see end of file.
        self._close(self._out[1])
        self._close(self._err[1])

    def start(self) -> None:
        self._pump = _base.start_thread(self._run, "wasm-stdio")

    def close(self) -> None:
        """After the module ended and its store is gone: deliver the rest, then free everything."""
        os.eventfd_write(self._ended, 1)
        if self._pump is not None:
            self._pump.join()
            self._pump = None
        for fd in list(self._open):
            self._close(fd)

    # -- the pump ----------------------------------------------------------------
    def _run(self) -> None:
        outs = [_Flow(self._out[0], self.fds[1]), _Flow(self._err[0], self.fds[2])]
        stdin = _Flow(self.fds[0], self._in[1]) if self._in is not None else None
        stopped = False
        while True:
            stopped = stopped or _readable(self.stop_fd)
            if stdin is not None and (stopped or stdin.src < 0 or _readable(self._ended)):
                self._close(stdin.dst)  # the module reads end of file
                stdin = None
            for flow in outs:
                if stopped:  # swallow output, so that a module blocked writing goes on to trap
                    flow.discard, flow.buf = True, b""
            outs = [flow for flow in outs if flow.src >= 0]
            if not outs and stdin is None:
                return
            events: dict[int, int] = {}  # one fd may be several flows' (a tty as stdin and stdout)
            if not stopped:
                events[self.stop_fd] = select.POLLIN
            if stdin is not None:
                events[self._ended] = select.POLLIN
            for flow in [*outs, *([stdin] if stdin else [])]:
                fd, ev = (flow.dst, select.POLLOUT) if flow.buf else (flow.src, select.POLLIN)
                events[fd] = events.get(fd, 0) | ev
            poller = select.poll()
            for fd, ev in events.items():
                poller.register(fd, ev)
            ready = dict(poller.poll())
            for flow in outs:
                self._step(flow, ready, to_module=False)
            if stdin is not None:
                self._step(stdin, ready, to_module=True)

    def _step(self, flow: _Flow, ready: dict[int, int], to_module: bool) -> None:
        """One read or write, if poll(2) reported the fd it waits on."""
        try:
            if flow.buf:
                if ready.get(flow.dst, 0) & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                    flow.buf = flow.buf[os.write(flow.dst, flow.buf[: flow.step]) :]
            elif ready.get(flow.src, 0) & (select.POLLIN | select.POLLERR | select.POLLHUP):
                data = os.read(flow.src, _CHUNK)
                if not data:  # end of file: the module's stream closed, or the caller's stdin ended
                    if not to_module:
                        self._close(flow.src)
                    flow.src = -1
                elif not flow.discard:
                    flow.buf = data
        except (BlockingIOError, InterruptedError):
            pass  # a caller's fd in O_NONBLOCK mode: poll again
        except OSError:  # the reader went away (EPIPE) or the caller's fd failed
            if to_module:
                flow.src = -1
            else:
                flow.discard, flow.buf = True, b""  # keep draining, so the module never blocks

    # -- poll_oneoff -----------------------------------------------------------
    def poll_oneoff(self, caller: wasmtime.Caller, in_ptr: int, out_ptr: int, nsubs: int, nevents_ptr: int) -> int:
        """WASI ``poll_oneoff(in, out, nsubscriptions, *nevents) -> errno``, stoppable."""
        try:
            return self._poll_oneoff(caller, in_ptr & 0xFFFFFFFF, out_ptr & 0xFFFFFFFF, nsubs & 0xFFFFFFFF,
                                     nevents_ptr & 0xFFFFFFFF)  # fmt: skip
        except BaseException:  # see the module docstring
            return ERRNO_IO

    def _poll_oneoff(self, caller: wasmtime.Caller, in_ptr: int, out_ptr: int, nsubs: int, nevents_ptr: int) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):  # no export "memory", or not a memory
            return ERRNO_INVAL
        size = memory.data_len(caller)
        if nsubs == 0:
            return ERRNO_INVAL  # the witx: "at least one subscription"
        if in_ptr + nsubs * SUBSCRIPTION_SIZE > size or out_ptr + nsubs * EVENT_SIZE > size or nevents_ptr + 4 > size:
            return ERRNO_FAULT
        subs = bytes(memory.read(caller, in_ptr, in_ptr + nsubs * SUBSCRIPTION_SIZE))
        now = time.monotonic_ns()
        clocks: list[tuple[int, int]] = []  # (userdata, monotonic deadline)
        waits: list[tuple[int, int, int, int]] = []  # (userdata, type, real fd, poll event)
        events: list[bytes] = []
        for off in range(0, len(subs), SUBSCRIPTION_SIZE):
            userdata, tag = _SUB_HEAD.unpack_from(subs, off)
            if tag == EVENTTYPE_CLOCK:
                clock, timeout, _precision, flags = _SUB_CLOCK.unpack_from(subs, off + 16)
                deadline = _deadline(clock, timeout, flags, now, self.clock_origin)
                if deadline is None:
                    events.append(_EVENT.pack(userdata, ERRNO_INVAL, tag, 0, 0))
                else:
                    clocks.append((userdata, deadline))
            elif tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
                (fd,) = _SUB_FD.unpack_from(subs, off + 16)
                target = self._poll_target(fd, tag)
                if target is None:  # a file or directory: always ready, as regular files are in poll(2)
                    events.append(_EVENT.pack(userdata, ERRNO_SUCCESS, tag, 0, 0))
                elif target < 0:
                    events.append(_EVENT.pack(userdata, ERRNO_BADF, tag, 0, 0))
                else:
                    waits.append((userdata, tag, target, select.POLLIN if tag == EVENTTYPE_FD_READ else select.POLLOUT))
            else:
                events.append(_EVENT.pack(userdata, ERRNO_INVAL, tag, 0, 0))
        if not events:
            stopped, events = self._block(clocks, waits)
            if stopped:
                return ERRNO_INTR  # the module reaches an epoch check next and traps
        memory.write(caller, b"".join(events), out_ptr)
        memory.write(caller, struct.pack("<I", len(events)), nevents_ptr)
        return ERRNO_SUCCESS

    def _poll_target(self, fd: int, tag: int) -> int | None:
        """The fd to poll for WASI fd 1/2 (-1: wrong direction); None: ready at once."""
        if fd == 0:
            # Always "ready": wasmtime reads stdin ahead from our pipe (measured), so
            # the pipe's state says nothing about what the module can read. A read
            # then blocks in wasmtime until data or end of file — or a stop.
            return None if tag == EVENTTYPE_FD_READ else -1
        if fd in (1, 2):
            return self.fds[fd] if tag == EVENTTYPE_FD_WRITE else -1
        return None

    def _block(self, clocks: list[tuple[int, int]], waits: list[tuple[int, int, int, int]]) -> tuple[bool, list[bytes]]:
        poller = select.poll()
        for _, _, fd, ev in waits:
            poller.register(fd, ev)
        poller.register(self.stop_fd, select.POLLIN)
        while True:
            now = time.monotonic_ns()
            due = [userdata for userdata, deadline in clocks if deadline <= now]
            if due:
                return False, [_EVENT.pack(u, ERRNO_SUCCESS, EVENTTYPE_CLOCK, 0, 0) for u in due]
            wait_ms = None if not clocks else max(0, -(-(min(d for _, d in clocks) - now) // 1_000_000))
            ready = dict(poller.poll(wait_ms))
            if self.stop_fd in ready:
                return True, []
            fired = [
                _EVENT.pack(u, ERRNO_SUCCESS, tag, 0, EVENTRWFLAGS_HANGUP if ready[fd] & select.POLLHUP else 0)
                for u, tag, fd, _ in waits
                if fd in ready
            ]
            if fired:
                return False, fired


def _deadline(clock: int, timeout: int, flags: int, now: int, origin: int) -> int | None:
    """A clock subscription as a host monotonic deadline in ns (None: unsupported clock)."""
    if clock == CLOCK_MONOTONIC:
        return origin + timeout if flags & SUBCLOCKFLAGS_ABSTIME else now + timeout
    if clock == CLOCK_REALTIME:
        return now + (timeout - time.time_ns()) if flags & SUBCLOCKFLAGS_ABSTIME else now + timeout
    return None  # process/thread CPU-time clocks cannot be waited for


def _readable(fd: int) -> bool:
    """An eventfd (or any fd) has something to read, without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _is_dev_null(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == _DEV_NULL
