"""rune delete [--force] <container-id>..."""

from __future__ import annotations

from ...errors import InclavareError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id> [container-id...]"
NARGS = (1, -1)


class Flags(_args.Flags):
    FLAGS = (Flag("force, f", help="forcibly delete the container if it is still running (uses SIGKILL)"),)
    __slots__ = ("force",)
    force: bool


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.delete import delete

    failed: InclavareError | None = None
    for cid in args:
        try:
            delete(ctx, cid, opts.force)
        except InclavareError as exc:
            if len(args) == 1:
                raise
            ctx.warn(f"{cid}: {exc}")
            failed = exc
    if failed is not None:
        raise failed
    return 0
