"""rune kill [--all] <container-id> [signal]"""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id> [signal]"
NARGS = (1, 2)


class Flags(_args.Flags):
    FLAGS = (Flag("all, a", help="send the specified signal to all processes inside the container"),)
    __slots__ = ("all",)
    all: bool


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.kill import kill, parse_signal

    sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
    kill(ctx, args[0], sig, opts.all)
    return 0
