"""rune events [--stats] [--interval 5s] <container-id>"""

from __future__ import annotations

import sys

from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)


class Flags(_args.Flags):
    FLAGS = (
        Flag("interval", "str", "5s", "set the stats collection interval"),
        Flag("stats", help="display the container's stats then exit"),
    )
    __slots__ = ("interval", "stats")
    interval: str
    stats: bool


def parse_duration(text: str) -> float:
    """Go durations as runc takes them: "5s", "500ms", "1m", "1.5s"."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise UsageError(f"invalid duration {text!r} for --interval")


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.update import events

    events(ctx, args[0], opts.stats, parse_duration(opts.interval), sys.stdout)
    return 0
