"""The long-lived shim: serves the Task service until containerd shuts it down.

Started by `start` (:mod:`.start`, forked) or run directly with the
listening socket as fd 3 (the form upstream re-executes itself in). It
mirrors runtime/v2/shim/shim.go ``run``:

* its own process group; stdin and stdout on /dev/null, stderr on the
  ``log`` fifo containerd opened in the bundle (containerd copies it into
  its own log: runtime/v2/shim_unix.go openShimLog), so what the shim logs
  reaches containerd's log; one line per failure, tracebacks only with
  ``-debug``;
* a child subreaper (:mod:`.reaper`); the main thread waits for signals:
  SIGCHLD reaps, SIGTERM and SIGINT end the shim (containers are left
  running, as upstream); a Shutdown with no container left ends it too;
* the ShimCgroup option (runc's Options, ctr's CreateOptions), if any, is
  joined before anything is served;
* on the way out the socket is removed and queued events are sent (5 s at
  most, upstream's wait for the publisher).
"""

from __future__ import annotations

import _signal
import _socket
import os
import select
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, Protocol

    from ..log import Logger
    from .events import Publisher
    from .reaper import Reaper
    from .server import Server

    class ShimFlags(Protocol):
        namespace: str
        id: str
        address: str
        publish_binary: str
        bundle: str
        socket: str
        debug: bool


_SHUTDOWN = b"\0"  # written to the wake-up pipe by the Shutdown RPC (no signal has number 0)


def run_forked(listener: object, flags: ShimFlags, options: bytes, address: str, ready_w: int) -> NoReturn:
    """The child of `start`: become the server; tell the parent "ok" or why not on `ready_w`."""
    status = 1
    ready = _Ready(ready_w)
    try:
        os.setpgid(0, 0)
        _detach_stdio()
        fileno = listener.detach()  # type: ignore[attr-defined]  # a _socket.socket
        status = serve(_socket.socket(fileno=fileno), flags, options, address, ready)
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        if not ready.say(message):  # serving already: what ended it goes to containerd's log
            from ..log import Logger

            Logger(None, "text").error(f"shim failed: {type(exc).__name__}: {message}")
        if flags.debug:
            import traceback

            traceback.print_exc()
    finally:
        os._exit(status)


class _Ready:
    """The pipe to `start`: one message ("ok", or why not), then closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def say(self, message: str) -> bool:
        """Send `message` if nothing was sent yet; whether it was."""
        if self.fd < 0:
            return False
        try:
            os.write(self.fd, message.encode(errors="replace")[:4000])
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1
        return True


def _detach_stdio() -> None:
    """stdin/stdout to /dev/null (containerd waits for EOF on the pipe it gave `start`), stderr to the log fifo."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:
        log = os.open("log", os.O_WRONLY | os.O_NONBLOCK)  # containerd holds it open for reading
        os.set_blocking(log, True)
    except OSError:
        log = null  # run by hand, outside containerd
    os.dup2(log, 2)
    for fd in {null, log}:
        os.close(fd)


def serve(listener: _socket.socket, flags: ShimFlags, options: bytes, address: str, ready: _Ready | None = None
          ) -> int:  # fmt: skip
    """Serve until shut down; returns the exit status."""
    from ..log import Logger

    log = Logger(None, "text", flags.debug)
    threading.excepthook = lambda args: _thread_died(log, flags.debug, args)
    os.chdir("/")  # the first bundle may go before the shim does
    _join_shim_cgroup(options)
    from .. import _sys
    from .._sys import consts

    _sys.default().prctl(consts.PR_SET_CHILD_SUBREAPER, 1)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    # _signal, not signal: the latter's enums cost start-up time, and numbers are all we need
    _signal.set_wakeup_fd(wake_w)
    for sig in (_signal.SIGCHLD, _signal.SIGTERM, _signal.SIGINT):
        _signal.signal(sig, lambda *_: None)  # the wake-up byte is what counts

    server, publisher, reaper = _build(flags, address, log, lambda: os.write(wake_w, _SHUTDOWN))
    server.serve(listener)
    if ready is not None:
        ready.say("ok")
    import gc

    gc.freeze()  # what start-up made lives as long as the shim: keep it out of every collection
    gc.enable()
    while True:
        select.select([wake_r], [], [])
        try:
            woke = os.read(wake_r, 512)
        except BlockingIOError:
            continue
        if _signal.SIGCHLD in woke:
            reaper.reap()
        if _signal.SIGTERM in woke or _signal.SIGINT in woke or _SHUTDOWN[0] in woke:
            break
    server.close()
    server.idle(1.0)  # the Shutdown response goes out before the process does
    _remove(address.removeprefix("unix://"))
    if not publisher.close(5.0):
        log.error("publisher not closed")
    return 0


def _build(flags: ShimFlags, address: str, log: Logger, shutdown: Callable[[], object]
           ) -> tuple[Server, Publisher, Reaper]:  # fmt: skip
    from . import carrier
    from .cgroups import OomWatcher
    from .events import Publisher
    from .reaper import Reaper
    from .server import Server
    from .service import SERVICE, TaskService

    exits: list[TaskService] = []
    reaper = Reaper(lambda pid, status: exits[0].on_exit(pid, status))
    publisher = Publisher(flags.namespace, os.environ.get("TTRPC_ADDRESS", ""), log, flags.publish_binary,
                          flags.address, reaper)  # fmt: skip
    from .pb import ev

    oom = OomWatcher(lambda cid: publisher.publish(ev.TaskOOM(container_id=cid)), log.warning)
    service = TaskService(flags.namespace, reaper, publisher, oom, log, carrier.load(), shutdown)
    exits.append(service)
    return Server({SERVICE: service.methods()}, log, flags.debug), publisher, reaper


def _join_shim_cgroup(options: bytes) -> None:
    if not options:
        return
    from .options import decode
    from .pb import wkt

    any_ = wkt.Any.FromString(options)
    path = decode(any_.type_url, any_.value).shim_cgroup
    if not path:
        return
    from .cgroups import ROOT, _v1_mounts, unified

    dirs = [ROOT] if unified() else sorted(set(_v1_mounts().values()))
    for base in dirs:
        procs = os.path.join(base, path.lstrip("/"), "cgroup.procs")
        if os.path.exists(procs):
            with open(procs, "w") as f:
                f.write(str(os.getpid()))


def _thread_died(log: Logger, debug: bool, args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread else "?"
    log.error(f"thread {name}: internal error: {args.exc_type.__name__}: {args.exc_value}")
    if debug:
        import traceback

        log.debug("".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
