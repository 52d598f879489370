"""One container of the shim: how Create makes it, and the processes it holds.

Create follows the runc shim (runtime/v2/runc/container.go NewContainer,
pkg/process/init.go Create), with the carrier step of the original shim-rune
before `rune create`:

1. the options (:mod:`.options`) are resolved and written to
   ``<bundle>/options.json`` (the `delete` subcommand reads them back when
   the shim is gone);
2. containerd's snapshot mounts go on ``<bundle>/rootfs`` (:mod:`.mount`);
3. the carrier hook (:mod:`.carrier`) may rework the bundle;
4. `rune create` runs with the init's stdio, the pid comes from
   ``<bundle>/init.pid``, and the init's cgroup is looked up for Stats and
   OOM events.

A failure at any step undoes the steps before it (`rune delete --force`
once rune has created the container, unmount the rootfs): containerd treats
a failed Create as nothing created.
"""

from __future__ import annotations

import os
import threading

from .. import _fastjson
from ..errors import InclavareError
from . import mount
from .carrier import CarrierError
from .errors import AlreadyExists, InvalidArgument, NotFound, ShimError, Unimplemented
from .options import ShimOptions, decode
from .process import Exec, Init, read_pid
from .rune import Rune
from .stdio import PipeIO, Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .carrier import CarrierHook
    from .cgroups import Cgroup
    from .reaper import Reaper

MAX_ID = 76  # containerd's identifiers.Validate
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_id(kind: str, value: str) -> str:
    """An id as containerd accepts them (identifiers.Validate): it names files in the bundle."""
    if not value or len(value) > MAX_ID or not set(value) <= _ID_CHARS or not value[0].isalnum():
        raise InvalidArgument(f"{kind} {value!r}: must be 1-{MAX_ID} letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")  # fmt: skip
    return value


class Container:
    def __init__(self, cid: str, bundle: str, namespace: str, options: ShimOptions, rune: Rune, init: Init,
                 rootfs: str) -> None:  # fmt: skip
        self.id = cid
        self.bundle = bundle
        self.namespace = namespace
        self.options = options
        self.rune = rune
        self.init = init
        self.rootfs = rootfs
        self.cgroup: Cgroup | None = None
        self.pausing = False
        self._execs: dict[str, Exec] = {}
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def process(self, exec_id: str) -> Init | Exec:
        if not exec_id:
            return self.init
        with self._lock:
            proc = self._execs.get(exec_id)
        if proc is None:
            raise NotFound(f"process does not exist {exec_id}")
        return proc

    def execs(self) -> list[Exec]:
        with self._lock:
            return list(self._execs.values())

    def reserve(self, exec_id: str) -> None:
        with self._lock:
            if exec_id in self._execs or exec_id in self._reserved:
                raise AlreadyExists(f"id {exec_id}")
            self._reserved.add(exec_id)

    def add(self, proc: Exec) -> None:
        with self._lock:
            self._reserved.discard(proc.id)
            self._execs[proc.id] = proc

    def release(self, exec_id: str) -> None:
        with self._lock:
            self._reserved.discard(exec_id)
            self._execs.pop(exec_id, None)

    def should_kill_all_on_exit(self) -> bool:
        """Whether init's exit leaves processes behind: the container has no PID namespace of
        its own (runtime/v2/runc/util.go ShouldKillAllOnExit; kill(2) of a pid ns's init kills it all)."""
        try:
            with open(os.path.join(self.bundle, "config.json"), "rb") as f:
                spec = _fastjson.loads(f.read())
            namespaces = spec["linux"]["namespaces"]  # type: ignore[index]  # any shape: the except decides
        except (OSError, ValueError, KeyError, TypeError):
            return True
        if not isinstance(namespaces, list):
            return True
        return not any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces if isinstance(ns, dict))


class Prepared:
    """A container between the steps of Create done outside the shim's lock and `rune create`."""

    def __init__(self, cid: str, bundle: str, options: ShimOptions, rootfs: str, stdio: Stdio) -> None:
        self.id, self.bundle, self.options, self.rootfs, self.stdio = cid, bundle, options, rootfs, stdio

    def undo(self) -> None:
        mount.unmount_all(self.rootfs)


def prepare(req: Any, reaper: Reaper, carrier: CarrierHook) -> Prepared:
    """Steps 1-3 of Create: options, rootfs, the carrier."""
    cid = check_id("container id", req.id)
    if req.checkpoint:
        raise Unimplemented("restoring a checkpoint is not supported: rune has no checkpoint/restore (CRIU)")
    bundle = os.path.realpath(req.bundle)
    options = decode(req.options.type_url, req.options.value) if req.HasField("options") else ShimOptions()
    with open(os.path.join(bundle, "options.json"), "w") as f:
        f.write(_fastjson.dumps(options.to_dict()))
    rootfs = ""
    if req.rootfs:
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs, mode=0o711, exist_ok=True)
        mount.mount_rootfs([(m.type, m.source, list(m.options)) for m in req.rootfs], rootfs)
    prepared = Prepared(cid, bundle, options, rootfs, Stdio(req.stdin, req.stdout, req.stderr, req.terminal))
    try:
        run_carrier(carrier, bundle, options, reaper)
    except BaseException:
        prepared.undo()
        raise
    return prepared


def run_carrier(carrier: CarrierHook, bundle: str, options: ShimOptions, reaper: Reaper) -> None:
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            spec = _fastjson.loads(f.read())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{bundle}/config.json: {exc}") from None
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{bundle}/config.json: not a JSON object")
    try:
        with reaper.foreign_children():
            carrier(bundle, spec, options)
    except ShimError:
        raise
    except InclavareError as exc:
        raise CarrierError(f"carrier: {exc}") from None
    except Exception as exc:  # a bug in a carrier: one line to containerd (the shim logs the traceback)
        raise CarrierError(f"carrier: internal error: {type(exc).__name__}: {exc}") from exc


def launch(prep: Prepared, namespace: str, reaper: Reaper) -> Container:
    """Step 4 of Create: `rune create` with the init's stdio (call with the shim's lock held)."""
    opts = prep.options
    rune = Rune(reaper, opts.binary_name, opts.root, namespace, prep.bundle, opts.systemd_cgroup, opts.enclave_required)
    init = Init(prep.id, prep.stdio, reaper)
    io = init.new_io(opts.io_uid, opts.io_gid)
    pid_file = os.path.join(prep.bundle, "init.pid")
    created = False
    try:
        if isinstance(io, PipeIO):
            io.start_logger(reaper, prep.id, namespace)
        console = "" if isinstance(io, PipeIO) else io.socket.path
        rune.create(prep.id, prep.bundle, pid_file, io.child_fds(), console, opts.no_pivot_root, opts.no_new_keyring)
        created = True
        io.started()
        init.pid = read_pid(pid_file)
    except BaseException:
        io.close()
        if created:
            _force_delete(rune, prep.id)
        prep.undo()
        raise
    reaper.watch(init.pid)
    container = Container(prep.id, prep.bundle, namespace, opts, rune, init, prep.rootfs)
    container.cgroup = _cgroup_of(init.pid)
    return container


def _force_delete(rune: Rune, cid: str) -> None:
    try:
        rune.delete(cid, force=True)
    except ShimError:
        pass  # the Create error is what counts


def _cgroup_of(pid: int) -> Cgroup | None:
    from .cgroups import Cgroup

    try:
        return Cgroup(pid)
    except (OSError, StopIteration):
        return None  # the init is gone already: Stats will say so


def exec_spec(spec: Any) -> bytes:
    """The OCI process of an ExecProcessRequest (JSON in an Any, typeurl's runtime-spec name)."""
    want = "types.containerd.io/opencontainers/runtime-spec/1/Process"
    if spec.type_url != want:
        raise InvalidArgument(f"exec spec: type {spec.type_url!r}, want {want}")
    try:
        if not isinstance(_fastjson.loads(spec.value), dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise InvalidArgument(f"exec spec: {exc}") from None
    return bytes(spec.value)


def resources(value: Any) -> bytes:
    want = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
    if value.type_url != want:
        raise InvalidArgument(f"update resources: type {value.type_url!r}, want {want}")
    return bytes(value.value)
