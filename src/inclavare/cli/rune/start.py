"""rune start <container-id>"""

from __future__ import annotations

from ...runtime.context import RuntimeContext
from ._args import Flags

SYNOPSIS = "<container-id>"
NARGS = (1, 1)


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.start import start

    start(ctx, args[0])
    return 0
