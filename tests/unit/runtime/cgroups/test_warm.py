"""runtime/cgroups/warm.py: the thread that keeps the cgroup rwsem warm
writes only to rune's own cgroup (moving nothing) and is gone after settle()."""

from __future__ import annotations

import _thread
import os
import time

import pytest

from inclavare.runtime.cgroups import own_cgroups, warm


def test_the_file_written_is_our_own_cgroups(tmp_path):
    procs = warm._own_procs_file()
    if procs is None:
        pytest.skip("no cgroup filesystem mounted here")
    assert os.path.basename(procs) == "cgroup.procs"
    with open(procs) as f:
        assert str(os.getpid()) in f.read().split()  # we are in it already: the write moves nothing


def test_no_cgroup_filesystem_means_no_file(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("22 27 0:21 / /proc rw,relatime - proc proc rw\n")
    assert warm._own_procs_file(str(info)) is None


def test_settle_stops_the_thread_and_nothing_moved():
    before = own_cgroups()
    threads = _thread._count()
    warm.start()
    warm.start()  # idempotent: one thread
    assert _thread._count() <= threads + 1
    warm.settle()
    # done is released in the thread's last statement; give it the moment to return
    for _ in range(1000):
        if _thread._count() == threads:
            break
        time.sleep(0.001)
    assert _thread._count() == threads
    assert warm._thread is None
    assert own_cgroups() == before
    warm.settle()  # and again: nothing to stop
