"""rune exec [command options] <container-id> <command> [args...]"""

from __future__ import annotations

from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag
from .create import warm_cgroups

SYNOPSIS = "[command options] <container-id> <command> [command options]  ||  -p process.json <container-id>"
NARGS = (1, -1)


class Flags(_args.Flags):
    FLAGS = (
        Flag("console-socket", "str", "", "path to an AF_UNIX socket which will receive the pty master"),
        Flag("cwd", "str", "", "current working directory in the container"),
        Flag("env, e", "list", help="set environment variables"),
        Flag("tty, t", help="allocate a pseudo-TTY"),
        Flag("user, u", "str", "", "UID (format: <uid>[:<gid>])"),
        Flag("additional-gids, g", "list", help="additional gids"),
        Flag("process, p", "str", "", "path to the process.json"),
        Flag("detach, d", help="detach from the container's process"),
        Flag("pid-file", "str", "", "specify the file to write the process id to"),
        Flag("process-label", "str", "", "set the asm process label for the process commonly used with selinux"),
        Flag("apparmor", "str", "", "set the apparmor profile for the process"),
        Flag("no-new-privs", help="set the no new privileges value for the process"),
        Flag("cap, c", "list", help="add a capability to the bounding set for the process"),
        Flag("preserve-fds", "uint", 0, "pass N additional file descriptors to the container"),
        Flag("cgroup", "list", help="run the process in a (sub)cgroup of the container (not supported)"),
    )
    __slots__ = ("additional_gids", "apparmor", "cap", "cgroup", "console_socket", "cwd", "detach", "env",
                 "no_new_privs", "pid_file", "preserve_fds", "process", "process_label", "tty", "user")  # fmt: skip
    console_socket: str
    cwd: str
    env: list[str]
    tty: bool
    user: str
    additional_gids: list[str]
    process: str
    detach: bool
    pid_file: str
    process_label: str
    apparmor: str
    no_new_privs: bool
    cap: list[str]
    preserve_fds: int
    cgroup: list[str]


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    warm_cgroups(ctx)  # the exec'd process joins the container's cgroups too
    from ...runtime.exec import ExecOptions, exec_process

    if opts.cgroup:
        raise UsageError("--cgroup: running exec'd processes in sub-cgroups is not supported")
    o = ExecOptions()
    o.args = args[1:]
    o.process_file = opts.process
    o.console_socket = opts.console_socket
    o.tty = opts.tty
    o.detach = opts.detach
    o.pid_file = opts.pid_file
    o.cwd = opts.cwd
    o.env = list(opts.env)
    o.user = opts.user
    try:
        o.extra_gids = [int(g) for g in opts.additional_gids]
    except ValueError:
        raise UsageError("--additional-gids: not a number") from None
    o.caps = list(opts.cap)
    o.no_new_privs = opts.no_new_privs
    o.preserve_fds = opts.preserve_fds
    o.apparmor = opts.apparmor
    o.process_label = opts.process_label
    return exec_process(ctx, args[0], o)
