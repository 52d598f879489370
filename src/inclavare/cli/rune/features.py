"""rune features: the OCI features document (JSON)."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...runtime.context import RuntimeContext
from ._args import Flags

SYNOPSIS = ""
NARGS = (0, 0)


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.features import features

    sys.stdout.write(_fastjson.dumps_pretty(features()) + "\n")
    return 0
