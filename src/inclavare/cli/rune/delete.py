"""rune delete [--force] <container-id>..."""

from __future__ import annotations

from ...errors import InclavareError
from ...runtime.context import RuntimeContext
from ._args import Flag

SYNOPSIS = "[command options] <container-id> [container-id...]"
NARGS = (1, -1)
FLAGS = [Flag("force, f", help="forcibly delete the container if it is still running (uses SIGKILL)")]


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.delete import delete

    failed: InclavareError | None = None
    for cid in args:
        try:
            delete(ctx, cid, bool(opts["force"]))
        except InclavareError as exc:
            if len(args) == 1:
                raise
            ctx.warn(f"{cid}: {exc}")
            failed = exc
    if failed is not None:
        raise failed
    return 0
