"""Process lifecycles as the runc shim keeps them, and the refusals containerd sees."""

from __future__ import annotations

import pytest

from inclavare.shim.container import check_id
from inclavare.shim.errors import FailedPrecondition, InvalidArgument, NotFound
from inclavare.shim.process import CREATED, DELETED, PAUSED, RUNNING, STOPPED, Exec, Init
from inclavare.shim.stdio import Stdio


def init(status: str) -> Init:
    proc = Init("c1", Stdio(), reaper=None)  # type: ignore[arg-type]
    proc.status = status
    return proc


def exec_(status: str, init_status: str = RUNNING) -> Exec:
    proc = Exec("e1", Stdio(), None, b"{}", init(init_status))  # type: ignore[arg-type]
    proc.status = status
    return proc


@pytest.mark.parametrize(("status", "verb", "after"), [
    (CREATED, "start", RUNNING), (CREATED, "delete", DELETED), (RUNNING, "pause", PAUSED),
    (PAUSED, "resume", RUNNING), (STOPPED, "delete", DELETED), (RUNNING, "exec", RUNNING),
    (PAUSED, "kill", PAUSED), (STOPPED, "kill", STOPPED), (RUNNING, "exited", STOPPED),
])  # fmt: skip
def test_init_transitions(status, verb, after):
    assert init(status).check(verb) == after


@pytest.mark.parametrize(("status", "verb", "message"), [
    (RUNNING, "start", "cannot start a running process"),
    (RUNNING, "delete", "cannot delete a running process"),
    (PAUSED, "delete", "cannot delete a paused process"),
    (PAUSED, "exec", "cannot exec in a paused process"),
    (STOPPED, "start", "cannot start a stopped process"),
    (STOPPED, "update", "cannot update a stopped container"),
    (CREATED, "pause", "cannot pause a created container"),
    (RUNNING, "resume", "cannot resume a running process"),
])  # fmt: skip
def test_init_refusals_are_failed_precondition(status, verb, message):
    with pytest.raises(FailedPrecondition) as err:
        init(status).check(verb)
    assert str(err.value) == message


def test_deleted_kill_and_delete_are_not_found():
    """deleted_state.go: containerd treats these as 'already gone'."""
    for verb in ("kill", "delete"):
        with pytest.raises(NotFound, match=f"cannot {verb} a deleted process"):
            init(DELETED).check(verb)


def test_exec_status_follows_a_paused_container():
    assert exec_(RUNNING, init_status=PAUSED).public_status() == PAUSED
    assert exec_(RUNNING).public_status() == RUNNING
    with pytest.raises(FailedPrecondition, match="cannot delete a running process"):
        exec_(RUNNING).check("delete")


def test_exec_kill_before_start_and_after_exit():
    with pytest.raises(FailedPrecondition, match="process not created"):
        exec_(CREATED).kill(15)
    done = exec_(RUNNING)
    done.pid = 999999
    done.set_exited(0)
    with pytest.raises(NotFound, match="process already finished"):
        done.kill(15)


def test_set_exited_once_and_not_news_after_delete():
    proc = init(RUNNING)
    assert proc.set_exited(137)
    assert (proc.status, proc.exit_status) == (STOPPED, 137)
    assert proc.wait(0)
    assert not proc.set_exited(0)
    assert proc.exit_status == 137
    gone = init(DELETED)
    assert not gone.set_exited(0)  # a created task deleted before its init died: Delete told containerd


@pytest.mark.parametrize("good", ["c1", "abc.def_ghi-0", "a" * 76])
def test_ids_containerd_accepts(good):
    assert check_id("container id", good) == good


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".hidden", "-x", "a" * 77, "sp ace"])
def test_ids_that_would_escape_the_bundle_are_refused(bad):
    with pytest.raises(InvalidArgument, match="must be 1-76 letters, digits"):
        check_id("exec id", bad)
