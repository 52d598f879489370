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


@pytest.mark.parametrize(("doc", "message"), [
    ({"init_process_pid": "12"}, "init_process_pid is not an integer"),
    ({"init_process_pid": True}, "init_process_pid is not an integer"),
    ({"init_process_start": 1.5}, "init_process_start is not an integer"),
    ({"bundle": ["x"]}, "bundle is not a string"),
    ({"cgroup": "v2"}, "cgroup is not an object"),
])  # fmt: skip
def test_a_member_of_the_wrong_type_is_a_corrupt_state(doc, message):
    with pytest.raises(InclavareError, match=f"^/run/x/c1/state.json: corrupt state: {message}$"):
        st.State.from_json("c1", "/run/x/c1", doc)


def test_absent_or_null_members_read_as_their_defaults():
    s = st.State.from_json("c1", "/run/x/c1", {"init_process_pid": None, "bundle": "/b"})
    assert (s.pid, s.start_time, s.bundle, s.cgroup, s.extra) == (0, None, "/b", {}, {})
