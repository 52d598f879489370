"""The warm pool's wire (enclave/pool/wire.py), key (key.py) and the guest's call dispatch
(guest.py Server) on malformed input: a one-line PoolProtocolError or an error reply,
never another exception, a hang or a leaked fd."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inclavare.enclave.errors import EnclaveStateError
from inclavare.enclave.pool import key, wire
from inclavare.enclave.pool.guest import Server
from inclavare.errors import EnclaveError


def test_a_message_and_its_fds_round_trip():
    a, b = wire.pair()
    r, w = os.pipe()
    with a, b:
        wire.send(a, {"op": "hit", "n": 1}, [r])
        msg, fds = wire.expect(b, "hit")
        assert msg == {"op": "hit", "n": 1}
        assert len(fds) == 1
        assert os.get_inheritable(fds[0]) is False
        os.write(w, b"x")
        assert os.read(fds[0], 1) == b"x"
        for fd in (r, w, *fds):
            os.close(fd)


def test_an_error_message_keeps_its_kind():
    a, b = wire.pair()
    with a, b:
        wire.send(a, wire.error_message(EnclaveStateError("enclave runtime wasm: wait called after destroy")))
        with pytest.raises(EnclaveStateError, match=r"^enclave runtime wasm: wait called after destroy$"):
            wire.expect(b, "result")
        wire.send(a, {"op": "error", "msg": "x", "kind": "ValueError"})  # not a kind that crosses: plain
        with pytest.raises(EnclaveError) as err:
            wire.expect(b, "result")
        assert type(err.value) is EnclaveError


def test_eof_and_the_wrong_op_are_protocol_errors():
    a, b = wire.pair()
    with b:
        wire.send(a, {"op": "miss"})
        with pytest.raises(wire.PoolProtocolError, match="expected hit, got 'miss'"):
            wire.expect(b, "hit")
        a.close()
        with pytest.raises(wire.PoolProtocolError, match="closed the connection"):
            wire.recv(b)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=2048))
def test_any_datagram_is_a_message_or_a_protocol_error(data):
    a, b = wire.pair()
    with a, b:
        a.sendall(data)
        try:
            msg, fds = wire.recv(b)
        except wire.PoolProtocolError:
            return
        assert isinstance(msg, dict)
        assert isinstance(msg["op"], str)
        assert fds == []


def test_the_key_is_of_every_byte():
    base = key.pool_key("wasm", "manifest=/m", b"manifest", b"sig")
    assert len(base) == 64
    assert len({base, key.pool_key("native", "manifest=/m", b"manifest", b"sig"),
                key.pool_key("wasm", "manifest=/m cache=off", b"manifest", b"sig"),
                key.pool_key("wasm", "manifest=/m", b"manifest ", b"sig"),
                key.pool_key("wasm", "manifest=/m", b"manifest", b"sig2")}) == 5  # fmt: skip


class _Refusing:
    """A runtime whose every call refuses: the server must answer, not fall over."""

    name = "fake"

    def __getattr__(self, name):
        def refuse(*_args):
            raise EnclaveStateError(f"enclave runtime fake: {name} refused")

        return refuse


@pytest.mark.parametrize("call", [
    {"op": "call", "name": "nonsense"},
    {"op": "call", "name": "wait", "pid": "1"},
    {"op": "call", "name": "wait", "pid": True},
    {"op": "call", "name": "kill", "pid": 1},
    {"op": "call", "name": "local_report", "target": "zz", "data": ""},
    {"op": "call", "name": "create_process", "path": "/p", "argv": [1], "env": []},
    {"op": "call", "name": "create_process", "path": "/p", "argv": ["a"], "env": []},
    {"op": "call", "name": "wait", "pid": 1},
])  # fmt: skip
def test_a_malformed_call_is_answered_with_an_error(call):
    ours, theirs = wire.pair()
    server = threading.Thread(target=Server(_Refusing(), theirs).serve, daemon=True)
    server.start()
    reply_mine, reply_theirs = wire.pair()
    with ours, reply_mine:
        wire.send(ours, call, [reply_theirs.fileno()])
        reply_theirs.close()
        msg, _ = wire.recv(reply_mine)
        assert msg["op"] == "error"
        assert "\n" not in str(msg["msg"])
    server.join(5)
    assert not server.is_alive()  # the control socket closed: the server destroyed and returned


def test_a_large_message_travels_in_a_memfd_with_its_fds():
    """A datagram is bounded by the socket buffer (~208 KiB): a process spec with a large
    environment must still arrive whole, its fds in order (found by review: EMSGSIZE before)."""
    a, b = wire.pair()
    r, w = os.pipe()
    env = [f"V{i}={'x' * 100}" for i in range(5000)]  # ~0.5 MiB
    with a, b:
        wire.send(a, {"op": "handoff", "process": {"env": env}}, [r])
        msg, fds = wire.expect(b, "handoff")
        assert msg["process"] == {"env": env}
        assert len(fds) == 1
        os.write(w, b"y")
        assert os.read(fds[0], 1) == b"y"
        for fd in (r, w, *fds):
            os.close(fd)


def test_a_spilled_header_without_its_memfd_is_refused():
    a, b = wire.pair()
    with a, b:
        a.sendall(b'{"op":"handoff","spilled":100000}')
        with pytest.raises(wire.PoolProtocolError, match="without its memfd"):
            wire.recv(b)


def test_the_guest_imports_nothing_once_it_is_in_the_container():
    """After the guest joined the mount namespace, a path import would load the image's code as
    root (found by review): only built-in and frozen modules load from then on."""
    import subprocess
    import sys

    code = ("from inclavare.enclave.pool.guest import _lock_imports\n"
            "_lock_imports()\n"
            "import _signal, itertools\n"  # built-in: fine
            "import sys\nassert 'wave' not in sys.modules\n"
            "try:\n    import wave\nexcept ImportError:\n    print('refused')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "refused\n"
