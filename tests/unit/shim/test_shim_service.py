"""TaskService decisions that need no container: Shutdown while a Create is under way."""

from __future__ import annotations

import logging
import threading

import pytest

from inclavare.shim.errors import FailedPrecondition
from inclavare.shim.reaper import Reaper
from inclavare.shim.service import TaskService


class _Request:
    def __init__(self, cid: str) -> None:
        self.id = cid


@pytest.fixture
def service():
    stopped = threading.Event()
    svc = TaskService("default", Reaper(lambda p, s: None), None, None, logging.getLogger("test"),
                      lambda b, s, o: None, stopped.set)  # fmt: skip
    return svc, stopped


def test_shutdown_waits_for_a_create_under_way(service):
    """containerd sends Shutdown after every task Delete; another container's Create (a carrier takes
    seconds) must not lose its shim."""
    svc, stopped = service
    svc._creating.add("b")
    svc.shutdown(_Request("a"))
    assert not stopped.is_set()
    svc._creating.discard("b")
    svc.shutdown(_Request("a"))
    assert stopped.is_set()


def test_no_create_starts_after_shutdown(service):
    svc, _ = service
    svc.shutdown(_Request("a"))
    with pytest.raises(FailedPrecondition, match="shutting down"):
        svc.create(_Request("c"))
