"""The spawn-protocol channel: framing, errors, and messages that overtake others."""

import os

import pytest

from inclavare.errors import InitFailed
from inclavare.runtime.process.messages import ERROR, HOOKS, PID, Channel, ChannelClosed


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
