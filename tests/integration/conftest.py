"""Fixtures of the integration tests beyond tests/conftest.py's (`rune`, `bundle`, ...)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def rune_fg(rune) -> Iterator[Callable[..., subprocess.Popen]]:
    """rune_fg(*args, **popen) -> the Popen of build/rune with this test's global options.

    For `rune run` in the foreground, whose exit status is the container's: a
    signal test asserts the status its trap (or the signal) sets, not only
    that the container stopped, which any signal would do. Whatever is still
    running at teardown is killed before `rune` deletes the containers.
    """
    argv = [rune("--version").args[0], *rune.globals]
    started: list[subprocess.Popen] = []

    def start(*args: str, **popen: Any) -> subprocess.Popen:
        started.append(subprocess.Popen([*argv, *args], **popen))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL for the module's tests (inclavare.testing.kbs.PostgresServer); skipped without one."""
    from inclavare.testing.kbs import PostgresServer

    if not PostgresServer.available():
        pytest.skip("PostgreSQL server binaries are not installed")
    server = PostgresServer()
    yield server
    server.stop()
