"""``containerd-shim-rune-v2``: containerd's shim v2 for rune (runtime type ``io.containerd.rune.v2``).

containerd finds the binary on its $PATH from the runtime type and runs it
as ``containerd-shim-rune-v2 [flags] start|delete`` (runtime/v2/shim/shim.go
parseFlags); without an action it serves on the socket inherited as fd 3.
The flags are Go's ``flag`` package's, as containerd passes them:

    -namespace NS   containerd namespace (required)
    -id ID          the container (task) id
    -address A      containerd's gRPC socket
    -publish-binary B   containerd itself (publishes events when $TTRPC_ADDRESS is unset)
    -bundle DIR     the bundle, when not the working directory (delete)
    -socket PATH    serve on this socket instead of fd 3
    -debug          debug log lines and tracebacks in containerd's log
    -v              print the version

A failure is one line on stderr, ``io.containerd.rune.v2: <reason>``, and
exit status 1, as upstream's shim prints it; containerd puts it in its error.
See docs/shim.md and :mod:`inclavare.shim`.
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..errors import InclavareError, UsageError
from .rune import _args
from .rune._args import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

RUNTIME = "io.containerd.rune.v2"


class Flags(_args.Flags):
    FLAGS = (
        Flag("namespace", "str", "", "namespace that owns the shim"),
        Flag("id", "str", "", "id of the task"),
        Flag("address", "str", "", "grpc address back to main containerd"),
        Flag("publish-binary", "str", "containerd", "path to publish binary (used for publishing events)"),
        Flag("bundle", "str", "", "path to the bundle if not workdir"),
        Flag("socket", "str", "", "socket path to serve"),
        Flag("debug", help="enable debug output in logs"),
        Flag("v", help="show the shim version and exit"),
    )
    __slots__ = ("address", "bundle", "debug", "id", "namespace", "publish_binary", "socket", "v")
    namespace: str
    id: str
    address: str
    publish_binary: str
    bundle: str
    socket: str
    debug: bool
    v: bool


def main(argv: list[str] | None = None) -> int:
    import gc

    # No cyclic garbage worth collecting while `start`/`delete` run or the server imports: a few
    # ms of every pod's start-up (the server turns collection back on once it serves).
    gc.disable()
    argv = sys.argv[1:] if argv is None else argv
    debug = "-debug" in argv or "--debug" in argv
    try:
        flags, rest = _args.parse(argv, Flags)
        return _run(flags, rest[0] if rest else "")
    except (InclavareError, OSError) as exc:
        return _fail(exc, debug)
    except Exception as exc:  # a bug in the shim: still one line (the traceback with -debug)
        return _fail(exc, debug, internal=True)


def _run(flags: Flags, action: str) -> int:
    if flags.v:
        sys.stdout.write(f"{sys.argv[0]}:\n  Version:  inclavare {__version__}\n\n")
        return 0
    if not flags.namespace:
        raise UsageError("shim namespace cannot be empty")
    if action == "start":
        from ..shim.start import start

        options = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
        _exit_with(start(flags, options).encode())
    if action == "delete":
        from ..shim.cleanup import delete

        _exit_with(delete(flags))
    if action:
        raise UsageError(f"unknown action {action!r} (want start, delete, or none to serve)")
    import _socket

    from ..shim.daemon import serve

    if flags.socket:
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        listener.bind(flags.socket)
        listener.listen(128)
    else:
        listener = _socket.socket(fileno=3)  # from the parent that re-executed us
    return serve(listener, flags, b"", f"unix://{flags.socket}" if flags.socket else _read_address())


def _exit_with(output: bytes) -> NoReturn:
    """Write `output` and exit now: containerd waits for this process to end, and the
    interpreter's own shutdown (module teardown, finalizers) would only add to that."""
    view = memoryview(output)
    while view:
        view = view[os.write(1, view) :]
    os._exit(0)


def _read_address() -> str:
    try:
        with open("address") as f:
            return f.read().strip()
    except OSError:
        return ""


def _fail(exc: BaseException, debug: bool, internal: bool = False) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    what = f"internal error: {type(exc).__name__}: {exc}" if internal else _message(exc)
    sys.stderr.write(f"{RUNTIME}: {what}\n")
    sys.stderr.flush()
    return 1


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    os._exit(main())
