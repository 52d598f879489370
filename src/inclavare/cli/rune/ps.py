"""rune ps [--format table|json] <container-id> [ps options]"""

from __future__ import annotations

import sys

from ... import _fastjson
from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id> [ps options]"
NARGS = (1, -1)


class Flags(_args.Flags):
    FLAGS = (Flag("format, f", "str", "table", "select one of: table or json"),)
    __slots__ = ("format",)
    format: str


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime import ps

    if opts.format == "json":
        if len(args) > 1:
            raise UsageError("ps options cannot be used with --format json")
        sys.stdout.write(_fastjson.dumps(ps.pids(ctx, args[0])) + "\n")
    elif opts.format == "table":
        sys.stdout.write(ps.table(ctx, args[0], args[1:]))
    else:
        raise UsageError(f"invalid format option {opts.format!r}")
    return 0
