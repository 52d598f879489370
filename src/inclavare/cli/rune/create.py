"""rune create [command options] <container-id>"""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)
CREATE_FLAGS = [
    Flag("bundle, b", "str", ".", "path to the root of the bundle directory, defaults to the current directory"),
    Flag("console-socket", "str", "", "path to an AF_UNIX socket which will receive the pty master"),
    Flag("pid-file", "str", "", "specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container"),
    Flag("preserve-fds", "uint", 0, "pass N additional file descriptors to the container"),
]
FLAGS = CREATE_FLAGS


def options(opts: dict[str, object]) -> object:
    from ...runtime.create import CreateOptions

    return CreateOptions(
        bundle=str(opts["bundle"]), console_socket=str(opts["console_socket"]) or None,
        pid_file=str(opts["pid_file"]) or None, no_pivot=bool(opts["no_pivot"]),
        no_new_keyring=bool(opts["no_new_keyring"]), preserve_fds=int(opts["preserve_fds"]),  # type: ignore[call-overload]
    )  # fmt: skip


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.create import create

    create(ctx, args[0], options(opts))  # type: ignore[arg-type]
    return 0
