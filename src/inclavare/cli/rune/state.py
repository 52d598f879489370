"""rune state <container-id>: the OCI state document, indented as runc prints it."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...runtime.context import RuntimeContext
from ._args import Flags

SYNOPSIS = "<container-id>"
NARGS = (1, 1)


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.query import state

    sys.stdout.write(_fastjson.dumps_pretty(state(ctx, args[0])) + "\n")
    return 0
