"""rune update [command options] <container-id>: change resource limits."""

from __future__ import annotations

import sys

from ... import _fastjson
from ...errors import UsageError
from ...runtime.context import RuntimeContext
from . import _args
from ._args import Flag

SYNOPSIS = "[command options] <container-id>"
NARGS = (1, 1)


class Flags(_args.Flags):
    FLAGS = (
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
    )
    __slots__ = ("blkio_weight", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_share",
                 "cpuset_cpus", "cpuset_mems", "kernel_memory", "kernel_memory_tcp", "l3_cache_schema",
                 "mem_bw_schema", "memory", "memory_reservation", "memory_swap", "pids_limit", "resources")  # fmt: skip
    resources: str
    blkio_weight: int | None
    cpu_period: int | None
    cpu_quota: int | None
    cpu_rt_period: int | None
    cpu_rt_runtime: int | None
    cpu_share: int | None
    cpuset_cpus: str | None
    cpuset_mems: str | None
    memory: str | None
    memory_reservation: str | None
    memory_swap: str | None
    pids_limit: int | None
    kernel_memory: str | None
    kernel_memory_tcp: str | None
    l3_cache_schema: str | None
    mem_bw_schema: str | None


def resources_from_flags(opts: Flags) -> dict[str, object]:
    """The linux.resources document the flags ask for (runc update's mapping)."""
    from ...runtime.update import parse_bytes

    res: dict[str, object] = {}

    def put(section: str, key: str, value: object) -> None:
        if value is not None:
            part = res.setdefault(section, {})
            assert isinstance(part, dict)
            part[key] = value

    def size(text: str | None) -> int | None:
        return parse_bytes(text) if text is not None else None

    put("blockIO", "weight", opts.blkio_weight)
    put("cpu", "period", opts.cpu_period)
    put("cpu", "quota", opts.cpu_quota)
    put("cpu", "realtimePeriod", opts.cpu_rt_period)
    put("cpu", "realtimeRuntime", opts.cpu_rt_runtime)
    put("cpu", "shares", opts.cpu_share)
    put("cpu", "cpus", opts.cpuset_cpus)
    put("cpu", "mems", opts.cpuset_mems)
    put("memory", "limit", size(opts.memory))
    put("memory", "reservation", size(opts.memory_reservation))
    put("memory", "swap", size(opts.memory_swap))
    put("memory", "kernelTCP", size(opts.kernel_memory_tcp))
    put("pids", "limit", opts.pids_limit)
    if opts.l3_cache_schema is not None or opts.mem_bw_schema is not None:
        raise UsageError("--l3-cache-schema/--mem-bw-schema: Intel RDT updates are not supported")
    return res


def main(ctx: RuntimeContext, opts: Flags, args: list[str]) -> int:
    from ...runtime.update import update

    if opts.resources:
        path = opts.resources
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
