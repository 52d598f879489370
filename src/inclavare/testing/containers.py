"""Watching containers from a test: their status through ``rune state``, and polling until something holds.

``rune`` is anything that runs rune with the given arguments and returns the
:class:`subprocess.CompletedProcess` (text output), like the ``rune`` fixture
of inclavare's own integration tests::

    rune("run", "-d", "--bundle", bundle, "c1", check=True)
    rune("kill", "c1", "TERM", check=True)
    wait_status(rune, "c1", "stopped")
    rune("delete", "c1", check=True)
    assert status(rune, "c1") == "gone"
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RuneCommand(Protocol):
    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]: ...


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.02) -> T:
    """The first true value of ``predicate()``, tried every ``interval`` s for up to ``timeout`` s.

    After the timeout, an AssertionError that names ``what`` (a test failure
    that says what never happened, not a hang).
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return value


def status(rune: RuneCommand, cid: str) -> str:
    """``cid``'s status from ``rune state`` (created, running, paused, stopped), or "gone" once it does not exist."""
    done = rune("state", cid)
    return str(json.loads(done.stdout)["status"]) if done.returncode == 0 else "gone"


def wait_status(rune: RuneCommand, cid: str, want: str, timeout: float = 10.0) -> float:
    """Wait until ``cid`` is ``want``; the seconds that took. The failure names the status it was left in."""
    started = time.monotonic()
    seen: list[str] = []

    def reached() -> bool:
        seen.append(status(rune, cid))
        return seen[-1] == want

    try:
        wait_for(reached, f"{cid} to be {want}", timeout, interval=0.01)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (it is {seen[-1]})") from None
    return time.monotonic() - started
