"""rune pause <container-id>"""

from __future__ import annotations

from ...runtime.context import RuntimeContext

SYNOPSIS = "<container-id>"
NARGS = (1, 1)
FLAGS: list = []


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.pause import pause

    pause(ctx, args[0])
    return 0
