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
