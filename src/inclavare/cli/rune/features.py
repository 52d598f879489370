"""rune features: the OCI features document (JSON)."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...runtime.context import RuntimeContext

SYNOPSIS = ""
NARGS = (0, 0)
FLAGS: list = []


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.features import features

    sys.stdout.write(_fastjson.dumps_pretty(features()) + "\n")
    return 0
