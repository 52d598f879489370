"""rune update [command options] <container-id>: change resource limits."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...errors import UsageError
from ...runtime.context import RuntimeContext
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)
FLAGS = [
    Flag("resources, r", "str", "", "path to a linux.resources JSON file ('-' for stdin); other flags are ignored"),
    Flag("blkio-weight", "int", None, "block IO weight (10-1000)"),
    Flag("cpu-period", "int", None, "CPU CFS period in microseconds"),
    Flag("cpu-quota", "int", None, "CPU CFS quota in microseconds"),
    Flag("cpu-rt-period", "int", None, "CPU realtime period in microseconds"),
    Flag("cpu-rt-runtime", "int", None, "CPU realtime runtime in microseconds"),
    Flag("cpu-share", "int", None, "CPU shares (relative weight)"),
    Flag("cpuset-cpus", "str", None, "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", "str", None, "memory nodes in which to allow execution"),
    Flag("memory", "str", None, "memory limit (in bytes, or with k/m/g)"),
    Flag("memory-reservation", "str", None, "memory reservation or soft limit"),
    Flag("memory-swap", "str", None, "total memory usage (memory + swap); -1 for unlimited"),
    Flag("pids-limit", "int", None, "maximum number of pids allowed in the container"),
    Flag("kernel-memory", "str", None, "kernel memory limit (ignored: gone from Linux)"),
    Flag("kernel-memory-tcp", "str", None, "kernel memory TCP limit"),
    Flag("l3-cache-schema", "str", None, "Intel RDT L3 cache schema (not supported)"),
    Flag("mem-bw-schema", "str", None, "Intel RDT memory bandwidth schema (not supported)"),
]


def resources_from_flags(opts: dict[str, object]) -> dict[str, object]:
    from ...runtime.update import parse_bytes

    res: dict[str, dict[str, object]] = {}

    def put(section: str, key: str, value: object) -> None:
        if value is not None:
            res.setdefault(section, {})[key] = value

    put("blockIO", "weight", opts["blkio_weight"])
    for flag, key in (("cpu_period", "period"), ("cpu_quota", "quota"), ("cpu_rt_period", "realtimePeriod"),
                      ("cpu_rt_runtime", "realtimeRuntime"), ("cpu_share", "shares"), ("cpuset_cpus", "cpus"),
                      ("cpuset_mems", "mems")):  # fmt: skip
        put("cpu", key, opts[flag])
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"), ("memory_swap", "swap"),
                      ("kernel_memory_tcp", "kernelTCP")):  # fmt: skip
        put("memory", key, parse_bytes(str(opts[flag])) if opts[flag] is not None else None)
    put("pids", "limit", opts["pids_limit"])
    if opts["l3_cache_schema"] is not None or opts["mem_bw_schema"] is not None:
        raise UsageError("--l3-cache-schema/--mem-bw-schema: Intel RDT updates are not supported")
    return dict[str, object](res)


def main(ctx: RuntimeContext, opts: dict[str, object], args: list[str]) -> int:
    from ...runtime.update import update

    if opts["resources"]:
        path = str(opts["resources"])
        try:
            raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"--resources {path}: {exc.strerror}") from None
        try:
            resources = _fastjson.loads(raw)
        except _fastjson.JSONError as exc:
            raise UsageError(f"--resources {path}: {exc}") from None
        if not isinstance(resources, dict):
            raise UsageError(f"--resources {path}: must be a linux.resources object")
    else:
        resources = resources_from_flags(opts)
    update(ctx, args[0], resources)
    return 0
