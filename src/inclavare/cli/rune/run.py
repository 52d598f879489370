"""rune run [command options] <container-id>: create and start, attached unless --detach."""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from ._args import Flag
from .create import CREATE_FLAGS, options

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)
FLAGS = [
    *CREATE_FLAGS,
    Flag("detach, d", help="detach from the container's process"),
    Flag("keep", help="do not delete the container after it exits"),
]


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.run import run

    return run(ctx, args[0], options(opts), bool(opts["detach"]), bool(opts["keep"]))  # type: ignore[arg-type]
