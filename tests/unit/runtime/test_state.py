import os

import pytest

from inclavare.errors import ContainerExists, ContainerNotFound, InclavareError
from inclavare.runtime import state as st


def test_atomic_save_and_load(tmp_path):
    d = st.make_dir(str(tmp_path), "c1")
    s = st.State("c1", d)
    s.pid, s.start_time, s.bundle, s.creating = os.getpid(), None, "/b", False
    s.save()
    loaded = st.load(str(tmp_path), "c1")
    assert loaded.bundle == "/b"
    assert loaded.status() == st.RUNNING  # our own pid is alive, no fifo
    assert [n for n in os.listdir(d) if n.startswith(".")] == []  # no temp file left


def test_recycled_pid_is_stopped(tmp_path):
    d = st.make_dir(str(tmp_path), "c2")
    s = st.State("c2", d)
    s.pid, s.creating = os.getpid(), False
    s.start_time = 1  # not our real start time: a different process now owns the pid
    assert s.status() == st.STOPPED


def test_created_while_fifo_exists(tmp_path):
    d = st.make_dir(str(tmp_path), "c3")
    s = st.State("c3", d)
    s.pid, s.creating = os.getpid(), False
    os.mkfifo(os.path.join(d, st.FIFO))
    assert s.status() == st.CREATED


def test_duplicate_and_invalid_ids(tmp_path):
    st.make_dir(str(tmp_path), "dup")
    with pytest.raises(ContainerExists):
        st.make_dir(str(tmp_path), "dup")
    for bad in ("", ".", "..", "a/b", "a b", "x" * 1025):
        with pytest.raises(InclavareError):
            st.validate_id(bad)
    with pytest.raises(ContainerNotFound):
        st.load(str(tmp_path), "missing")
