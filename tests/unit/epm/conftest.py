"""Fixtures of the epm tests: a real epm (store, gRPC server, gate) on a unix socket in a private directory."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from inclavare.testing.epm import Epm


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
        e = Epm(str(tmp_path / "root"), os.path.join(short_dir, "run"), **bounds).start()  # type: ignore[arg-type]
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
