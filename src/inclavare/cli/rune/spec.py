"""rune spec [--bundle DIR] [--rootless]: write a template config.json."""

from __future__ import annotations

import json
import os

from ...errors import InclavareError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options]"
NARGS = (0, 0)


class Flags(_args.Flags):
    FLAGS = (
        Flag("bundle, b", "str", "", "path to the root of the bundle directory"),
        Flag("rootless", help="generate a configuration for a rootless container"),
    )
    __slots__ = ("bundle", "rootless")
    bundle: str
    rootless: bool


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...spec.template import example, to_rootless

    bundle = opts.bundle
    if bundle and not os.path.isdir(bundle):
        raise InclavareError(f"--bundle {bundle}: not a directory")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise InclavareError("File config.json exists. Remove it first")
    spec = example()
    if opts.rootless:
        spec = to_rootless(spec)
    with open(path, "x") as f:
        # Tab-indented, like runc's json.MarshalIndent(spec, "", "\t").
        f.write(json.dumps(spec, indent="\t"))
    return 0
