"""rune run [command options] <container-id>: create and start, attached unless --detach."""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from . import create
from ._args import Flag
from .create import options, warm_cgroups

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)


class Flags(create.Flags):
    FLAGS = (
        *create.Flags.FLAGS,
        Flag("detach, d", help="detach from the container's process"),
        Flag("keep", help="do not delete the container after it exits"),
    )
    __slots__ = ("detach", "keep")
    detach: bool
    keep: bool


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    warm_cgroups(ctx)
    from ...runtime.run import run

    return run(ctx, args[0], options(opts), opts.detach, opts.keep)
