"""rune's command line, driven as containerd's runc shim drives runc.

Every command is ``<binary> --root <Root>/<namespace> --log <bundle>/log.json
--log-format json [--systemd-cgroup] [--enclave-required] <verb> ...``
(pkg/process/init.go NewRunc and github.com/containerd/go-runc), so that
rune's state for one containerd namespace is one directory, and rune writes
its errors to log.json as JSON lines. When a command fails, the shim
reports the last error line *that command* wrote, prefixed with what failed
("OCI runtime create failed: ..."), as the runc shim does
(pkg/process/utils.go getLastRuntimeError); only the lines appended since the
command started count, so an old error is never blamed on a new command.

The process's stdio is rune's stdio for create and exec (rune passes it to
the container); with a terminal, and for every other verb, rune's output is
captured instead and read while it runs (a large `ps` cannot fill the pipe
and stall).
"""

from __future__ import annotations

import os
import select

from .. import _fastjson
from ..errors import one_line
from .errors import RuntimeFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .reaper import Reaper


class Rune:
    def __init__(self, reaper: Reaper, binary: str, root: str, namespace: str, bundle: str,
                 systemd_cgroup: bool = False, enclave_required: bool = False) -> None:  # fmt: skip
        self.reaper = reaper
        self.binary = binary
        self.root = os.path.join(root, namespace)
        self.log_path = os.path.join(bundle, "log.json")
        self.flags = ["--root", self.root, "--log", self.log_path, "--log-format", "json"]
        if systemd_cgroup:
            self.flags.append("--systemd-cgroup")
        if enclave_required:
            self.flags.append("--enclave-required")

    # -- verbs ---------------------------------------------------------------------------
    def create(self, cid: str, bundle: str, pid_file: str, stdio: tuple[int, int, int] | None,
               console_socket: str = "", no_pivot: bool = False, no_new_keyring: bool = False) -> None:  # fmt: skip
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        args += ["--console-socket", console_socket] if console_socket else []
        args += ["--no-pivot"] if no_pivot else []
        args += ["--no-new-keyring"] if no_new_keyring else []
        self.run([*args, cid], "OCI runtime create failed", stdio)

    def start(self, cid: str) -> None:
        self.run(["start", cid], "OCI runtime start failed")

    def exec(self, cid: str, process_file: str, pid_file: str, stdio: tuple[int, int, int] | None,
             console_socket: str = "") -> None:  # fmt: skip
        args = ["exec", "--process", process_file, "--detach", "--pid-file", pid_file]
        args += ["--console-socket", console_socket] if console_socket else []
        self.run([*args, cid], "OCI runtime exec failed", stdio)

    def kill(self, cid: str, signal: int, all_: bool = False) -> None:
        self.run(["kill", *(["--all"] if all_ else []), cid, str(signal)], "OCI runtime kill failed")

    def delete(self, cid: str, force: bool = False) -> None:
        self.run(["delete", *(["--force"] if force else []), cid], "failed to delete task")

    def pause(self, cid: str) -> None:
        self.run(["pause", cid], "OCI runtime pause failed")

    def resume(self, cid: str) -> None:
        self.run(["resume", cid], "OCI runtime resume failed")

    def update(self, cid: str, resources: bytes) -> None:
        self.run(["update", "--resources", "-", cid], "OCI runtime update failed", stdin=resources)

    def ps(self, cid: str) -> list[int]:
        out = self.run(["ps", "--format", "json", cid], "OCI runtime ps failed")
        try:
            pids = _fastjson.loads(out or b"null")
        except ValueError:
            pids = None
        if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
            raise RuntimeFailed(f"OCI runtime ps failed: not a JSON list of pids: {out[:200]!r}")
        return pids

    # -- running -------------------------------------------------------------------------
    def argv(self, args: list[str]) -> list[str]:
        return [self.binary, *self.flags, *args]

    def run(self, args: list[str], what: str, stdio: tuple[int, int, int] | None = None,
            stdin: bytes | None = None) -> bytes:  # fmt: skip
        """Run one rune command; its stdout (when captured), or :class:`RuntimeFailed`."""
        offset = self._log_size()
        if stdio is not None:
            waited = self.reaper.wait(self.reaper.spawn(self.argv(args), *stdio))
            assert waited is not None  # no timeout
            status, out, err = waited, b"", b""
        else:
            status, out, err = self._captured(args, stdin)
        if status != 0:
            raise RuntimeFailed(f"{what}: {self.error_since(offset) or _last_line(err) or _exited(status)}")
        return out

    def _captured(self, args: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        fds: list[int] = []
        try:
            in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
            fds += [in_r, in_w]
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            fds += [out_r, out_w, err_r, err_w]
            pid = self.reaper.spawn(self.argv(args), in_r, out_w, err_w)
            for fd in (in_r, out_w, err_w):
                os.close(fd)
                fds.remove(fd)
            if stdin is not None:
                _write_all(in_w, stdin)
                os.close(in_w)
                fds.remove(in_w)
            return self._collect(pid, out_r, err_r)
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def _collect(self, pid: int, out_r: int, err_r: int) -> tuple[int, bytes, bytes]:
        """Read both pipes until EOF, or until rune exited and they are drained (a process
        it left behind may hold them open)."""
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        poller = select.poll()
        for fd in chunks:
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        open_fds, status = set(chunks), None
        while open_fds:
            ready = poller.poll(0 if status is not None else 50)
            for fd, _ in ready:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
            if not ready:
                if status is not None:
                    break
                status = self.reaper.wait(pid, 0)
        if status is None:
            status = self.reaper.wait(pid)
        assert status is not None
        return status, b"".join(chunks[out_r]), b"".join(chunks[err_r])

    # -- errors --------------------------------------------------------------------------
    def _log_size(self) -> int:
        try:
            return os.stat(self.log_path).st_size
        except OSError:
            return 0

    def error_since(self, offset: int) -> str:
        """The last ``"level":"error"`` message rune wrote to log.json after `offset`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                lines = f.read(1 << 20).splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            try:
                entry = _fastjson.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") == "error" and isinstance(entry.get("msg"), str):
                return one_line(entry["msg"].strip())
        return ""


def _last_line(output: bytes) -> str:
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    return one_line(lines[-1]) if lines else ""


def _exited(status: int) -> str:
    return f"rune did not terminate successfully: exit status {status}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
