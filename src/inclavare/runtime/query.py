"""Read-only verbs: `rune state` and `rune list`.

Both add rune's ``enclave`` object (type, runtime path, args, log level and
where each setting came from: an annotation or a process.env variable) to
runc's output for an enclave container, so that an operator can see what a
container runs in whichever way its bundle asked for it.
"""

from __future__ import annotations

import os
import pwd
import time

from ..errors import ContainerNotFound, InclavareError
from . import state as st
from .context import RuntimeContext


def state(ctx: RuntimeContext, container_id: str) -> dict[str, object]:
    s = st.load(ctx.root, container_id)
    return {**s.oci_state(), **_enclave(s)}


def list_containers(ctx: RuntimeContext) -> list[dict[str, object]]:
    """runc's `list --format json` objects, in id order."""
    out = []
    for cid in st.list_ids(ctx.root):
        try:
            s = st.load(ctx.root, cid)
        except ContainerNotFound:
            continue  # deleted meanwhile
        except InclavareError as exc:  # corrupt: the others are still listed, as runc's list does
            ctx.warn(f"load container {cid}: {exc}")
            continue
        oci = s.oci_state()
        out.append({
            "ociVersion": oci["ociVersion"], "id": cid, "pid": oci["pid"], "status": oci["status"],
            "bundle": s.bundle, "rootfs": s.rootfs, "created": s.created, "owner": _owner(s.dir),
            **({"annotations": s.annotations} if s.annotations else {}),
            **_enclave(s),
        })  # fmt: skip
    return out


def _enclave(s: st.State) -> dict[str, object]:
    enclave = s.extra.get("enclave")
    return {"enclave": enclave} if isinstance(enclave, dict) else {}


def _owner(path: str) -> str:
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (KeyError, OSError):
        return "#" + str(os.stat(path).st_uid) if os.path.exists(path) else ""


def format_table(rows: list[dict[str, object]]) -> str:
    """The text table of `runc list` (tabwriter: min width 12, padding 1)."""
    header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "ENCLAVE"]
    lines = [header] + [[str(r["id"]), str(r["pid"]), str(r["status"]), str(r["bundle"]),
                         _format_created(str(r["created"])), str(r["owner"]), _enclave_cell(r)]
                        for r in rows]  # fmt: skip
    widths = [max(12, *(len(line[i]) + 1 for line in lines)) for i in range(len(header) - 1)]
    return "".join("".join(f.ljust(w) for f, w in zip(line, widths, strict=False)) + line[-1] + "\n" for line in lines)


def _enclave_cell(row: dict[str, object]) -> str:
    """``software/wasm``: the type and runtime; "-" for a plain container."""
    enclave = row.get("enclave")
    if not isinstance(enclave, dict):
        return "-"
    return f"{enclave.get('type')}/{enclave.get('path')}"


def _format_created(created: str) -> str:
    """runc prints created in Go's RFC3339Nano; keep ours as stored."""
    return created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
