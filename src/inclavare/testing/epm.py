"""A real epm in this process, for tests: the store, the gRPC server and its root-only gate.

    epm = Epm(root, run_dir, max_size=1 << 20).start()   # serves <run_dir>/epm.sock
    with epm.client() as c: ...
    epm.clock.offset += 3600                              # entries age without waiting
    epm.restart()                                         # the same root, a new server
    epm.stop()

`run_dir` must be short (a unix socket's path has at most 107 bytes) and,
like epm's own, a directory only root may enter.
"""

from __future__ import annotations

import os
import subprocess
import time

from ..epm.client import EpmClient
from ..epm.config import EpmConfig
from ..epm.server import Server
from ..epm.store import Store


class Clock:
    """time.time, plus `offset` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Epm:
    def __init__(self, root: str, run: str, *, max_size: int = 1 << 30, max_age: int = 7 * 86400) -> None:
        self.config = EpmConfig(root=root, address=os.path.join(run, "epm.sock"), max_size=max_size, max_age=max_age)
        self.clock = Clock()
        self.store: Store | None = None
        self.server: Server | None = None

    @property
    def socket(self) -> str:
        return self.config.address

    def start(self) -> Epm:
        c = self.config
        self.store = Store(c.root, c.database, max_size=c.max_size, max_age=c.max_age, clock=self.clock).open()
        self.server = Server(c, self.store)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0)
            self.server = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> EpmClient:
        return EpmClient(self.config.address, timeout=5)

    def data_of(self, key: tuple[str, str, str]) -> str:
        """Where epm keeps `key`'s data (for tests that tamper with it)."""
        assert self.store is not None
        entry = self.store.get(key)
        assert entry is not None, key
        return entry.path


class PoolServer:
    """`inclavare epm serve` (a subprocess) keeping `size` warm instances of each bundle's enclave.

    pool = PoolServer(bundle, run_dir, size=2).start()   # returns once every entry is full
    rune --config <pool.node_config(path)> ...           # claims from it
    pool.stop()
    """

    def __init__(self, bundles: str | list[str], run: str, size: int = 1, env: dict[str, str] | None = None) -> None:
        self.bundles = [bundles] if isinstance(bundles, str) else list(bundles)
        self.run, self.size, self.env = run, size, env
        self.socket = os.path.join(run, "pool", "pool.sock")
        self.log = os.path.join(run, "epm.log")
        self.metrics = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def full(self) -> int:
        """Instances ready when every entry is full."""
        return self.size * len(self.bundles)

    def start(self, timeout: float = 60.0) -> PoolServer:
        import socket
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.metrics = f"127.0.0.1:{s.getsockname()[1]}"
        os.makedirs(self.run, mode=0o700, exist_ok=True)
        config = os.path.join(self.run, "epm.toml")
        entries = "".join(f'[[pool.enclaves]]\nbundle = "{b}"\nsize = {self.size}\n' for b in self.bundles)
        with open(config, "w") as f:
            f.write(f'root = "{self.run}/root"\n[grpc]\naddress = "{self.run}/grpc/epm.sock"\n'
                    f'[pool]\nsocket = "{self.socket}"\nmetrics_address = "{self.metrics}"\n{entries}')  # fmt: skip
        os.chmod(config, 0o600)
        cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "epm", "serve", "--config", config]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=self.env)  # fmt: skip
        self.wait_ready(self.full, timeout)
        return self

    def ready(self) -> int:
        """Instances ready now (epm_pool_ready), -1 before epm answers."""
        return self.metric("epm_pool_ready")

    def metric(self, name: str, runtime: str = "") -> int:
        """The sum of a metric's series at /metrics (those of `runtime`'s entries, if given), -1
        before epm answers."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return -1
        label = f'runtime="{runtime}"' if runtime else ""
        values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + "{") and label in line]
        return sum(int(float(v)) for v in values)

    def wait_ready(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ready() < n:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"epm exited {self.proc.returncode}: {self._tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"epm's pool did not have {n} ready in {timeout} s: {self._tail()}")
            time.sleep(0.05)

    def node_config(self, path: str, pal_dirs: list[str] | None = None) -> str:
        """Write a rune node configuration (runtime/nodeconfig.py) that claims from this pool."""
        dirs = f"pal_dirs = [{', '.join(f'{chr(34)}{d}{chr(34)}' for d in pal_dirs)}]\n" if pal_dirs else ""
        with open(path, "w") as f:
            f.write(f'[enclave]\n{dirs}pool_socket = "{self.socket}"\n')
        os.chmod(path, 0o644)
        return path

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"
