"""rune state <container-id>: the OCI state document, indented as runc prints it."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...runtime.context import RuntimeContext

SYNOPSIS = "<container-id>"
NARGS = (1, 1)
FLAGS: list = []


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.query import state

    sys.stdout.write(_fastjson.dumps_pretty(state(ctx, args[0])) + "\n")
    return 0
