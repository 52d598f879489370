"""rune create [command options] <container-id>"""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...runtime.create import CreateOptions

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)


class Flags(_args.Flags):
    FLAGS: tuple[Flag, ...] = (
        Flag("bundle, b", "str", ".", "path to the root of the bundle directory, defaults to the current directory"),
        Flag("console-socket", "str", "", "path to an AF_UNIX socket which will receive the pty master"),
        Flag("pid-file", "str", "", "specify the file to write the process id to"),
        Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
        Flag("no-new-keyring", help="do not create a new session keyring for the container"),
        Flag("preserve-fds", "uint", 0, "pass N additional file descriptors to the container"),
    )
    __slots__ = ("bundle", "console_socket", "no_new_keyring", "no_pivot", "pid_file", "preserve_fds")
    bundle: str
    console_socket: str
    pid_file: str
    no_pivot: bool
    no_new_keyring: bool
    preserve_fds: int


def options(opts: Flags) -> CreateOptions:
    from ...runtime.create import CreateOptions

    return CreateOptions(bundle=opts.bundle, console_socket=opts.console_socket or None,
                         pid_file=opts.pid_file or None, no_pivot=opts.no_pivot,
                         no_new_keyring=opts.no_new_keyring, preserve_fds=opts.preserve_fds)  # fmt: skip


def warm_cgroups(ctx: RuntimeContext) -> None:
    """Before the imports of a create: the cgroup join's grace period runs
    meanwhile (runtime/cgroups/warm.py). Rootless rune may not write its
    own cgroup: nothing to gain there."""
    if not ctx.rootless:
        from ...runtime.cgroups import warm

        warm.start()


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    warm_cgroups(ctx)
    from ...runtime.create import create

    create(ctx, args[0], options(opts))
    return 0
