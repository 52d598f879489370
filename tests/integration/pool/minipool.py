"""A one-key claim server for the pool tests: spawns real instances
(inclavare.enclave.pool.instance) and hands them out, as epm's pool does, so
rune's side can be tested on its own. epm's own manager has its tests in
tests/integration/epm."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from inclavare.enclave.pool import wire


class MiniPool:
    def __init__(self, path: str, rootfs: str, runtime: str, args: str) -> None:
        self.path = path
        self.template = {"op": "prepare", "rootfs": rootfs, "runtime": runtime, "args": args, "tee": "software"}
        self.ready: list[tuple[socket.socket, subprocess.Popen[bytes], dict[str, object]]] = []
        self.claims: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._server.bind(path)
        os.chmod(path, 0o600)
        self._server.listen(8)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def fill(self, n: int = 1) -> dict[str, object]:
        ready: dict[str, object] = {}
        for _ in range(n):
            ours, theirs = wire.pair()
            cmd = [sys.executable, "-m", "inclavare.enclave.pool.instance", "--fd", str(theirs.fileno())]
            proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            theirs.close()
            self.procs.append(proc)
            wire.send(ours, self.template)
            ready, _ = wire.expect(ours, "ready")
            self.ready.append((ours, proc, ready))
        return ready

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                try:
                    msg, _ = wire.recv(conn)
                except wire.PoolProtocolError:
                    continue
                self.claims.append(str(msg.get("key")))
                match = [r for r in self.ready if r[2]["key"] == msg.get("key")]
                if match:
                    self.ready.remove(match[0])
                    wire.send(conn, {"op": "hit"}, [match[0][0].fileno()])
                    match[0][0].close()
                else:
                    wire.send(conn, {"op": "miss"})

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        self._server.close()
        for sock, proc, _ in self.ready:
            sock.close()
            proc.kill()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        os.unlink(self.path)
