"""`rune ps`: the processes of a container.

As runc does: the pids come from the container's cgroup; the table is the
host's `ps` output (default ``-ef``) filtered to the rows whose PID column is
one of them.
"""

from __future__ import annotations

import subprocess

from ..errors import ContainerError, InclavareError
from . import cgroups
from . import state as st
from .context import RuntimeContext


def pids(ctx: RuntimeContext, container_id: str) -> list[int]:
    state = st.load(ctx.root, container_id)
    state.require("ps")
    cg = cgroups.from_state(state.cgroup)
    if cg is None:
        raise ContainerError(f"container {container_id} has no cgroup")
    return sorted(cg.pids())


def table(ctx: RuntimeContext, container_id: str, ps_args: list[str]) -> str:
    wanted = set(pids(ctx, container_id))
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InclavareError(f"ps {' '.join(ps_args)}: {exc}") from None
    lines = out.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise InclavareError("ps output has no PID column (add -o pid,... or use the default -ef)")
    col = header.index("PID")
    rows = [line for line in lines[1:] if _pid_of(line, col) in wanted]
    return "\n".join([lines[0], *rows]) + "\n"


def _pid_of(line: str, col: int) -> int:
    fields = line.split()
    try:
        return int(fields[col])
    except (IndexError, ValueError):
        return -1
