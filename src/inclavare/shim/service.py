"""The Task service (``containerd.task.v2.Task``): containerd's RPCs, one method each.

It follows containerd's runc shim (runtime/v2/runc/task/service.go), with
rune as the runtime: every RPC finds its container and process, checks the
process's lifecycle (:mod:`.process`), runs rune (:mod:`.rune`) and
publishes the task event (:mod:`.events`). Errors keep upstream's gRPC
codes: NotFound for an unknown container or process, AlreadyExists for a
taken id, FailedPrecondition for a verb the status refuses, and rune's own
last error line for what rune refused ("OCI runtime create failed: ...").

One lock orders the events of a task: Create and Start hold it while rune
runs and until their event is queued, and the thread that handles exits
takes it for each one, so a TaskExit is never published before the
TaskStart (or TaskExecStarted) of its process and always finds the pid that
Start learnt (upstream's eventSendMu; the exec's pid race of containerd
1.6's shim, closed in 1.7 by the same means). Checkpoint is not offered:
rune has no CRIU.
"""

from __future__ import annotations

import os
import threading
from _queue import SimpleQueue

from .. import __version__
from . import container as ctr
from .errors import AlreadyExists, FailedPrecondition, NotFound, RuntimeFailed, ShimError, Unimplemented
from .events import pack, timestamp
from .pb import api, ev, runc, task_types, wkt
from .process import CREATED, DELETED, PAUSED, RUNNING, Exec, Init, start_exec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..log import Logger
    from .carrier import CarrierHook
    from .cgroups import OomWatcher
    from .events import Publisher
    from .reaper import Reaper

SERVICE = "containerd.task.v2.Task"
# containerd.v1.types.Status (proto/.../api/types/task/task.proto)
_STATUS = {"created": 1, "running": 2, "stopped": 3, "paused": 4, "pausing": 5, "deleted": 3}


class TaskService:
    def __init__(self, namespace: str, reaper: Reaper, publisher: Publisher, oom: OomWatcher, log: Logger,
                 carrier: CarrierHook, shutdown: Callable[[], object]) -> None:  # fmt: skip
        self.namespace = namespace
        self.reaper = reaper
        self.publisher = publisher
        self.oom = oom
        self.log = log
        self.carrier = carrier
        self._shutdown = shutdown
        self.containers: dict[str, ctr.Container] = {}
        self._creating: set[str] = set()  # ids of Creates under way (a second Create of one is refused)
        self._closing = False  # Shutdown said yes: no Create may start after it
        self._map_lock = threading.Lock()
        self._events = threading.Lock()  # upstream's eventSendMu; see the module docstring
        self._exits: SimpleQueue[tuple[int, int]] = SimpleQueue()
        threading.Thread(target=self._handle_exits, name="exits", daemon=True).start()

    def methods(self) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
        names = ("State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec",
                 "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown")  # fmt: skip
        inputs = {"Create": "CreateTaskRequest", "Exec": "ExecProcessRequest", "Checkpoint": "CheckpointTaskRequest",
                  "Update": "UpdateTaskRequest"}  # fmt: skip
        return {n: (f"containerd.task.v2.{inputs.get(n, n + 'Request')}", getattr(self, n.lower())) for n in names}

    def get(self, cid: str) -> ctr.Container:
        with self._map_lock:
            found = self.containers.get(cid)
        if found is None:
            raise NotFound("container not created")
        return found

    # -- create and start ----------------------------------------------------------------
    def create(self, req: Any) -> Any:
        with self._map_lock:
            if self._closing:
                raise FailedPrecondition("shim is shutting down")
            if req.id in self.containers or req.id in self._creating:
                raise AlreadyExists(f"container {req.id}: already exists")
            self._creating.add(req.id)
        try:
            prepared = ctr.prepare(req, self.reaper, self.carrier)
            with self._events:
                c = ctr.launch(prepared, self.namespace, self.reaper)  # undoes `prepare` if it fails
                with self._map_lock:
                    self.containers[c.id] = c
                io = ev.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, terminal=req.terminal)
                self.publisher.publish(ev.TaskCreate(container_id=c.id, bundle=req.bundle, rootfs=req.rootfs, io=io,
                                                     checkpoint=req.checkpoint, pid=c.init.pid))  # fmt: skip
        finally:
            with self._map_lock:
                self._creating.discard(req.id)
        return api.CreateTaskResponse(pid=c.init.pid)

    def start(self, req: Any) -> Any:
        c = self.get(req.id)
        proc = c.process(req.exec_id)
        with self._events, proc.lock:
            proc.check("start")
            if isinstance(proc, Exec):
                start_exec(proc, c.rune, c.id, c.bundle, self.namespace, c.options.io_uid, c.options.io_gid)
                proc.status = RUNNING
                self.publisher.publish(ev.TaskExecStarted(container_id=c.id, exec_id=proc.id, pid=proc.pid))
            else:
                c.rune.start(c.id)
                proc.status = RUNNING
                if c.cgroup is not None:
                    self.oom.add(c.id, c.cgroup)
                self.publisher.publish(ev.TaskStart(container_id=c.id, pid=proc.pid))
        return api.StartResponse(pid=proc.pid)

    def exec(self, req: Any) -> Any:
        c = self.get(req.id)
        exec_id = ctr.check_id("exec id", req.exec_id)
        spec = ctr.exec_spec(req.spec)
        c.reserve(exec_id)
        try:
            with c.init.lock:
                c.init.check("exec")
                stdio = ctr.Stdio(req.stdin, req.stdout, req.stderr, req.terminal)
                c.add(Exec(exec_id, stdio, self.reaper, spec, c.init))
        except BaseException:
            c.release(exec_id)
            raise
        self.publisher.publish(ev.TaskExecAdded(container_id=c.id, exec_id=exec_id))
        return wkt.Empty()

    # -- exits ---------------------------------------------------------------------------
    def on_exit(self, pid: int, status: int) -> None:
        """The reaper's callback (main thread): hand over to the exits thread."""
        self._exits.put((pid, status))

    def _handle_exits(self) -> None:
        while True:
            pid, status = self._exits.get()
            try:
                self._handle_exit(pid, status)
            except Exception as exc:  # this thread must go on: every later exit depends on it
                self.log.error(f"exit of pid {pid}: internal error: {type(exc).__name__}: {exc}")

    def _handle_exit(self, pid: int, status: int) -> None:
        with self._events:
            found = self._find(pid)
            if found is None:
                return  # an orphan that was not ours to report
            c, proc = found
            if isinstance(proc, Init) and c.should_kill_all_on_exit():
                self._kill_all(c)
            if not proc.set_exited(status):
                return  # deleted before it exited (a created task): Delete reported it
            self.publisher.publish(ev.TaskExit(container_id=c.id, id=proc.id, pid=pid, exit_status=status,
                                               exited_at=timestamp(proc.exited_at)))  # fmt: skip

    def _find(self, pid: int) -> tuple[ctr.Container, Init | Exec] | None:
        with self._map_lock:
            containers = list(self.containers.values())
        for c in containers:
            procs: list[Init | Exec] = [c.init, *c.execs()]
            for proc in procs:
                if proc.pid == pid and not proc.exited:
                    return c, proc
        return None

    def _kill_all(self, c: ctr.Container) -> None:
        try:
            c.rune.kill(c.id, 9, all_=True)
        except ShimError as exc:
            # runc's kill --all signals the cgroup even once init has gone; rune refuses a stopped
            # container, so the shim does what runc would (libcontainer signalAllProcesses)
            if c.cgroup is None:
                self.log.error(f"failed to kill init's children of {c.id}: {exc}")
            else:
                c.cgroup.kill_all(9)

    # -- the rest of the lifecycle -------------------------------------------------------
    def delete(self, req: Any) -> Any:
        c = self.get(req.id)
        proc = c.process(req.exec_id)
        with proc.lock:
            proc.check("delete")
            proc.release_io()
            if isinstance(proc, Init):
                self._delete_init(c, force=proc.status == CREATED)
            proc.status = DELETED
        self.reaper.unwatch(proc.pid)
        if isinstance(proc, Exec):
            c.release(proc.id)
            _remove(os.path.join(c.bundle, f"{proc.id}.pid"))
        else:
            with self._map_lock:
                self.containers.pop(c.id, None)
            _remove(os.path.join(c.bundle, "init.pid"))  # deleted and reported: `delete` has nothing to do
            self.publisher.publish(ev.TaskDelete(container_id=c.id, pid=proc.pid, exit_status=proc.exit_status,
                                                 exited_at=_exited_at(proc)))  # fmt: skip
        return api.DeleteResponse(pid=proc.pid, exit_status=proc.exit_status, exited_at=_exited_at(proc))

    def _delete_init(self, c: ctr.Container, force: bool) -> None:
        # runc deletes a created container (killing its init) without --force; rune wants it
        error: ShimError | None = None
        try:
            c.rune.delete(c.id, force=force)
        except RuntimeFailed as exc:
            if "does not exist" not in str(exc):  # deleted behind our back: still ours to clean up
                error = exc
        for proc in c.execs():
            if proc.io is not None:
                proc.io.close()
        try:
            from .mount import unmount_all

            unmount_all(c.rootfs)
        except ShimError as exc:
            error = error or exc
        if error is not None:
            raise error

    def kill(self, req: Any) -> Any:
        c = self.get(req.id)
        proc = c.process(req.exec_id)
        if isinstance(proc, Exec):
            proc.kill(req.signal)
            return wkt.Empty()
        with proc.lock:
            proc.check("kill")
            try:
                c.rune.kill(c.id, req.signal, all_=req.all)
            except RuntimeFailed as exc:
                raise _kill_error(str(exc)) from None
        return wkt.Empty()

    def pause(self, req: Any) -> Any:
        c = self.get(req.id)
        with c.init.lock:
            c.init.check("pause")
            c.pausing = True
            try:
                c.rune.pause(c.id)
            finally:
                c.pausing = False
            c.init.status = PAUSED
        self.publisher.publish(ev.TaskPaused(container_id=c.id))
        return wkt.Empty()

    def resume(self, req: Any) -> Any:
        c = self.get(req.id)
        with c.init.lock:
            c.init.check("resume")
            c.rune.resume(c.id)
            c.init.status = RUNNING
        self.publisher.publish(ev.TaskResumed(container_id=c.id))
        return wkt.Empty()

    def update(self, req: Any) -> Any:
        c = self.get(req.id)
        with c.init.lock:
            c.init.check("update")
            c.rune.update(c.id, ctr.resources(req.resources))
        return wkt.Empty()

    # -- queries and stdio ---------------------------------------------------------------
    def state(self, req: Any) -> Any:
        c = self.get(req.id)
        proc = c.process(req.exec_id)
        status = proc.public_status() if isinstance(proc, Exec) else ("pausing" if c.pausing else proc.status)
        s = proc.stdio
        return api.StateResponse(id=proc.id, bundle=c.bundle, pid=proc.pid, status=_STATUS[status], stdin=s.stdin,
                                 stdout=s.stdout, stderr=s.stderr, terminal=s.terminal, exit_status=proc.exit_status,
                                 exited_at=_exited_at(proc))  # fmt: skip

    def wait(self, req: Any) -> Any:
        proc = self.get(req.id).process(req.exec_id)
        proc.wait()
        return api.WaitResponse(exit_status=proc.exit_status, exited_at=_exited_at(proc))

    def pids(self, req: Any) -> Any:
        c = self.get(req.id)
        execs = {p.pid: p.id for p in c.execs() if p.pid}
        out = []
        for pid in c.rune.ps(c.id):
            info = pack(runc.ProcessDetails(exec_id=execs[pid])) if pid in execs else None
            out.append(task_types.ProcessInfo(pid=pid, info=info))
        return api.PidsResponse(processes=out)

    def stats(self, req: Any) -> Any:
        c = self.get(req.id)
        if c.cgroup is None:
            raise NotFound("cgroup does not exist")
        type_url, value = c.cgroup.stats()
        return api.StatsResponse(stats=wkt.Any(type_url=type_url, value=value))

    def resizepty(self, req: Any) -> Any:
        self.get(req.id).process(req.exec_id).resize(req.width, req.height)
        return wkt.Empty()

    def closeio(self, req: Any) -> Any:
        proc = self.get(req.id).process(req.exec_id)
        if req.stdin:
            proc.close_stdin()
        return wkt.Empty()

    def checkpoint(self, req: Any) -> Any:
        self.get(req.id)
        raise Unimplemented("checkpoint is not supported by containerd-shim-rune-v2: rune has no checkpoint/restore")

    def connect(self, req: Any) -> Any:
        with self._map_lock:
            c = self.containers.get(req.id)
        return api.ConnectResponse(shim_pid=os.getpid(), task_pid=c.init.pid if c else 0,
                                   version=f"inclavare {__version__}")  # fmt: skip

    def shutdown(self, req: Any) -> Any:
        # containerd sends Shutdown after every task Delete; a Create still under way (a carrier
        # takes seconds) is a container of the pod too: the runc shim holds its lock across Create.
        with self._map_lock:
            if self.containers or self._creating:
                return wkt.Empty()  # still serving the pod's other containers
            self._closing = True
        self._shutdown()
        return wkt.Empty()


def _exited_at(proc: Init | Exec) -> Any:
    # unset unless exited: containerd reads an absent timestamp as the zero time
    return timestamp(proc.exited_at) if proc.exited else None


def _kill_error(message: str) -> ShimError:
    """rune kill's refusal, classified as the runc shim does (pkg/process/utils.go checkKillError)."""
    lower = message.lower()
    if "os: process already finished" in message or "container not running" in message or "no such process" in lower:
        return NotFound("process already finished")
    if "does not exist" in message:
        return NotFound("no such container")
    return ShimError(f"unknown error after kill: {message}")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
