"""rune kill [--all] <container-id> [signal]"""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from ._args import Flag

SYNOPSIS = "[command options] <container-id> [signal]"
NARGS = (1, 2)
FLAGS = [Flag("all, a", help="send the specified signal to all processes inside the container")]


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.kill import kill, parse_signal

    sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
    kill(ctx, args[0], sig, bool(opts["all"]))
    return 0
