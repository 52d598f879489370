"""rune list [--format table|json] [--quiet]"""

from __future__ import annotations

import sys

from ... import _fastjson
from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options]"
NARGS = (0, 0)


class Flags(_args.Flags):
    FLAGS = (
        Flag("format, f", "str", "table", "select one of: table or json"),
        Flag("quiet, q", help="display only container IDs"),
    )
    __slots__ = ("format", "quiet")
    format: str
    quiet: bool


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.query import format_table, list_containers

    rows = list_containers(ctx)
    if opts.quiet:
        sys.stdout.write("".join(f"{r['id']}\n" for r in rows))
    elif opts.format == "json":
        sys.stdout.write(_fastjson.dumps(rows) + "\n")
    elif opts.format == "table":
        sys.stdout.write(format_table(rows))
    else:
        raise UsageError(f"invalid format option {opts.format!r}")
    return 0
