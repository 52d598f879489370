"""The spawn-protocol channel: framing, errors, and messages that overtake others."""

import errno
import os

import pytest

from inclavare.errors import InitFailed
from inclavare.runtime.process.messages import ERROR, GO, HOOKS, PID, Channel, ChannelClosed


@pytest.fixture
def pair():
    a, b = Channel.pair()
    yield a, b
    a.close()
    b.close()


def test_roundtrip_and_partial_reads(pair):
    parent, child = pair
    child.send(PID, {"pid": 42})
    child.send(HOOKS)
    assert parent.expect(PID) == {"pid": 42}
    assert parent.recv() == (HOOKS, None)


def test_early_message_is_kept_for_later(pair):
    parent, child = pair
    child.send(HOOKS)  # init overtakes the intermediate
    child.send(PID, {"pid": 7})
    assert parent.expect(PID, early=(HOOKS,)) == {"pid": 7}
    assert parent.expect(HOOKS) is None


def test_unexpected_and_error_messages(pair):
    parent, child = pair
    child.send(HOOKS)
    with pytest.raises(InitFailed, match="expected 'pid', got 'hooks'"):
        parent.expect(PID)
    child.send(ERROR, {"msg": "mounts[2]: mounting proc on /proc: Permission denied"})
    with pytest.raises(InitFailed, match=r"^mounts\[2\]: mounting proc"):
        parent.expect(PID, early=(HOOKS,))


def test_eof_means_the_child_died(pair):
    parent, child = pair
    os.close(child.wfd)
    os.close(parent.wfd)
    child.wfd = parent.wfd = -1
    with pytest.raises(ChannelClosed):
        parent.expect(PID)


def test_send_to_a_dead_peer_reports_what_it_said_before_dying():
    """The intermediate fails (say, setns) and exits while main sends it the next
    message: main must report the child's error, not its own EPIPE."""
    parent, child = Channel.pair()
    child.send(ERROR, {"msg": "setns into linux.namespaces[2].path: Operation not permitted"})
    child.close()
    with pytest.raises(InitFailed, match=r"^setns into linux\.namespaces\[2\]\.path: Operation not permitted$"):
        parent.send(GO)
    parent.close()


def test_send_to_a_peer_that_died_silently():
    parent, child = Channel.pair()
    child.close()
    with pytest.raises(ChannelClosed, match=r"sending 'go': Broken pipe"):
        parent.send(GO)
    parent.close()


class _GoneCgroup:
    """A cgroup manager whose join finds init gone (ESRCH from cgroup.procs)."""

    def add(self, pid: int) -> None:
        from inclavare.errors import InclavareError

        raise InclavareError(f"cgroup /sys/fs/cgroup/pids/c1: cannot add process {pid}: No such process")


def test_a_failed_cgroup_join_reports_why_init_exited():
    """init builds its rootfs while main joins it to the cgroups: when a mount
    fails, init reports it and exits, and the join then finds no process.
    The mount error is what create must say, not the cgroup's ESRCH."""
    from inclavare.runtime.create import _join_cgroups

    parent, child = Channel.pair()
    child.send(ERROR, {"msg": "mounts[7]: mounting nosuchfs from x on /bad: No such device"})
    child.close()
    with pytest.raises(InitFailed, match=r"^mounts\[7\]: mounting nosuchfs from x on /bad: No such device$"):
        _join_cgroups(_GoneCgroup(), 4242, parent)
    parent.close()


def test_a_failed_cgroup_join_without_a_reason_from_init():
    from inclavare.errors import InclavareError
    from inclavare.runtime.create import _join_cgroups

    parent, child = Channel.pair()
    with pytest.raises(InclavareError, match="cannot add process 4242: No such process"):
        _join_cgroups(_GoneCgroup(), 4242, parent)
    parent.close()
    child.close()


def test_steps_name_the_step_and_the_file():
    from inclavare.errors import SyscallError
    from inclavare.runtime.steps import located, step

    with pytest.raises(SyscallError) as e, step("process.oomScoreAdj: writing", "/proc/1/oom_score_adj"):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert str(e.value) == "process.oomScoreAdj: writing /proc/1/oom_score_adj: Permission denied"
    assert e.value.errno == errno.EACCES
    err = located("create", FileNotFoundError(errno.ENOENT, "No such file or directory", "/run/x"))
    assert str(err) == "create /run/x: No such file or directory"
    with pytest.raises(InitFailed), step("untouched"):
        raise InitFailed("rune's own errors pass through")
