"""Fixtures of the epm tests: a real epm (store, gRPC server, gate) on a unix socket in a private directory."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from inclavare.epm.client import EpmClient
from inclavare.epm.config import EpmConfig
from inclavare.epm.server import Server
from inclavare.epm.store import Store


class Epm:
    """An epm serving `root` on `<run>/epm.sock`; restart() stops it and serves the same root again."""

    def __init__(self, root: str, run: str, **bounds: int) -> None:
        self.config = EpmConfig(root=root, address=os.path.join(run, "epm.sock"), **bounds)  # type: ignore[arg-type]
        self.clock = Clock()
        self.store: Store | None = None
        self.server: Server | None = None

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


class Clock:
    """time.time, plus whatever the test adds (entries age without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@pytest.fixture
def short_dir():
    """A private directory with a short path: a unix socket's path has at most 107 bytes."""
    path = tempfile.mkdtemp(prefix="epm-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def epm_factory(short_dir, tmp_path):
    started: list[Epm] = []

    def make(**bounds: int) -> Epm:
        e = Epm(str(tmp_path / "root"), os.path.join(short_dir, "run"), **bounds).start()
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def epm(epm_factory):
    return epm_factory()


@pytest.fixture
def source(tmp_path):
    """source(name, {relpath: bytes}) -> a directory holding those files."""

    def make(name: str, files: dict[str, bytes]) -> str:
        d = tmp_path / "src" / name
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        return str(d)

    return make
