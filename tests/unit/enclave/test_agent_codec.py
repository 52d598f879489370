"""The agent protocol codec: round trips, partial reads, malformed frames, fuzzing."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inclavare.enclave.agent import (
    CLOSED,
    INIT,
    MAX_FRAME,
    NEED_DATA,
    RUNELET,
    AgentConnection,
    AttestRequest,
    AttestResponse,
    ExecRequest,
    ExecResponse,
    Kill,
)
from inclavare.enclave.errors import AgentProtocolError

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

EXEC = ExecRequest(["sh", "-c", "echo 'two words'"], ["A=1", "B=with space"], "/work dir", tty=True)
ATTEST = AttestRequest(b"\x01" * 64, bytes(range(256)) * 2, is_ra=True, quote_type="epidLinkable")


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


def events(conn: AgentConnection) -> list[object]:
    out: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if event is CLOSED:
            break
    return out


def error_of(role: str, data: bytes, fds: tuple[int, ...] = ()) -> str:
    conn = AgentConnection(role)
    conn.receive_data(data, fds)
    with pytest.raises(AgentProtocolError) as err:
        events(conn)
    return str(err.value)


def test_exec_round_trip_with_stdio_and_kills():
    runelet, init = AgentConnection(RUNELET), AgentConnection(INIT)
    init.receive_data(runelet.send(EXEC), [10, 11, 12])
    init.receive_data(runelet.send(Kill(15)) + runelet.send(Kill(2)))
    got = events(init)
    assert got == [EXEC, Kill(15), Kill(2)]
    assert got[0].stdio == (10, 11, 12)
    assert got[0].argv == ["sh", "-c", "echo 'two words'"]  # arrays: spaces survive
    runelet.receive_data(init.send(ExecResponse(143, "")))
    runelet.receive_data(b"")
    assert events(runelet) == [ExecResponse(143, ""), CLOSED]


def test_attest_round_trip():
    runelet, init = AgentConnection(RUNELET), AgentConnection(INIT)
    init.receive_data(runelet.send(ATTEST))
    assert events(init) == [ATTEST]
    report = bytes(range(200)) + bytes(232)
    runelet.receive_data(init.send(AttestResponse(report, "")))
    assert events(runelet) == [AttestResponse(report, "")]


def test_one_byte_at_a_time():
    runelet, init = AgentConnection(RUNELET), AgentConnection(INIT)
    data = runelet.send(EXEC) + runelet.send(Kill(9))
    seen: list[object] = []
    for i in range(len(data)):
        init.receive_data(data[i : i + 1], [20, 21, 22] if i == 0 else [])
        seen.extend(events(init))
        if i < len(data) - 1:
            assert init.next_event() is NEED_DATA
    init.receive_data(b"")
    assert seen == [EXEC, Kill(9)]
    assert init.next_event() is CLOSED


def test_wire_format_is_length_prefixed_json():
    runelet = AgentConnection(RUNELET)
    runelet.send(EXEC)
    assert runelet.send(Kill(15)) == frame(b'{"type":"kill","sig":15}')
    init = AgentConnection(INIT)
    init.receive_data(frame(b'{"type":"kill","sig":15}'))
    with pytest.raises(AgentProtocolError, match=r"unexpected kill message, expected exec or attest$"):
        init.next_event()


def test_unknown_members_are_ignored():
    init = AgentConnection(INIT)
    init.receive_data(frame(b'{"type":"attest","report_data":"","target_info":"","is_ra":false,'
                            b'"quote_type":"","added_later":[1,2]}'))  # fmt: skip
    assert events(init) == [AttestRequest()]


def test_frame_size_limit_is_checked_from_the_header():
    header = (MAX_FRAME + 1).to_bytes(4, "little")
    assert (
        error_of(INIT, header) == f"agent protocol: frame of {MAX_FRAME + 1} bytes exceeds the maximum of {MAX_FRAME}"
    )
    big = ExecRequest(["x" * 100], [])
    with pytest.raises(AgentProtocolError, match=r"exceeds 50$"):
        AgentConnection(RUNELET, max_frame=50).send(big)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame(b""), "agent protocol: empty frame"),
        (frame(b"{nope"), "agent protocol: frame is not JSON: "),
        (frame(b"\xff\xfe"), "agent protocol: frame is not JSON: not UTF-8"),
        (frame(b"[" * 100000 + b"]" * 100000), "agent protocol: frame is not JSON: nested too deeply"),
        (frame(b"[1]"), 'agent protocol: frame is not a JSON object with a "type"'),
        (frame(b'{"type":1}'), 'agent protocol: frame is not a JSON object with a "type"'),
        (frame(b'{"type":"exec_response","exit_code":0,"error":""}'),
         "agent protocol: unexpected message type 'exec_response' for the init-runelet"),
        (frame(b'{"type":"shell"}'), "agent protocol: unexpected message type 'shell' for the init-runelet"),
    ],
)  # fmt: skip
def test_malformed_frames(data, message):
    assert error_of(INIT, data).startswith(message)


def exec_wire(**fields: object) -> bytes:
    import json

    base: dict[str, object] = {"type": "exec", "argv": ["true"], "env": [], "cwd": "/", "tty": False}
    base.update(fields)
    return frame(json.dumps({k: v for k, v in base.items() if v is not ...}).encode())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"argv": ...}, "argv: missing"),
        ({"argv": []}, "argv: must not be empty"),
        ({"argv": "sh -c x"}, "argv: must be an array of strings"),
        ({"argv": ["a", 1]}, "argv: must be an array of strings"),
        ({"argv": ["a\u0000b"]}, "argv: contains a NUL character"),
        ({"env": ["NOEQUALS"]}, "env: entries must be KEY=VALUE"),
        ({"cwd": "relative"}, "cwd: must be an absolute path"),
        ({"tty": 1}, "tty: must be true or false"),
    ],
)
def test_exec_field_errors(fields, message):
    assert error_of(INIT, exec_wire(**fields), (3, 4, 5)) == f"agent exec message: {message}"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b'{"type":"kill","sig":0}', "agent kill message: sig: must be 1 to 64, got 0"),
        (b'{"type":"kill","sig":true}', "agent kill message: sig: must be an integer"),
        (b'{"type":"kill","sig":1.5}', "agent kill message: sig: must be an integer"),
        (b'{"type":"attest","report_data":"0g","target_info":"","is_ra":false,"quote_type":""}',
         "agent attest message: report_data: not an even number of hex digits"),
        (b'{"type":"attest","report_data":"0 1","target_info":"","is_ra":false,"quote_type":""}',
         "agent attest message: report_data: not an even number of hex digits"),
        (b'{"type":"attest","report_data":"' + b"00" * 65 + b'","target_info":"","is_ra":false,"quote_type":""}',
         "agent attest message: report_data: at most 64 bytes, got 65"),
        (b'{"type":"attest","report_data":"","target_info":"00","is_ra":false,"quote_type":""}',
         "agent attest message: target_info: must be empty or 512 bytes, got 1"),
        (b'{"type":"attest","report_data":"","target_info":"","is_ra":false,"quote_type":"dcap"}',
         "agent attest message: quote_type: unknown quote type 'dcap'"),
    ],
)  # fmt: skip
def test_request_field_errors(wire, message):
    conn = AgentConnection(INIT)
    if b'"kill"' in wire:
        conn.receive_data(AgentConnection(RUNELET).send(ATTEST))
        conn.next_event()
    conn.receive_data(frame(wire))
    with pytest.raises(AgentProtocolError) as err:
        conn.next_event()
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b'{"type":"exec_response","exit_code":256,"error":""}',
         "agent exec_response message: exit_code: must be 0 to 255, got 256"),
        (b'{"type":"exec_response","exit_code":0}', "agent exec_response message: error: missing"),
        (b'{"type":"attest_response","report":"!!!","error":""}', "agent attest_response message: report: not base64"),
    ],
)  # fmt: skip
def test_response_field_errors(wire, message):
    assert error_of(RUNELET, frame(wire)) == message


def test_file_descriptors_travel_only_with_exec():
    assert error_of(INIT, exec_wire(), (3, 4)) == (
        "agent protocol: exec message came with 2 file descriptors, expected 3"
    )
    conn = AgentConnection(INIT)
    conn.receive_data(AgentConnection(RUNELET).send(ATTEST), [7])
    with pytest.raises(AgentProtocolError, match=r"attest message came with file descriptors$"):
        conn.next_event()
    assert conn.take_fds() == [7]  # for the caller to close
    assert conn.take_fds() == []


def test_message_order():
    runelet = AgentConnection(RUNELET)
    data = runelet.send(EXEC)
    assert error_of(INIT, data + data, (3, 4, 5)) == (
        "agent protocol: unexpected exec message: only kill messages may follow a request"
    )
    init = AgentConnection(INIT)
    one = init.send  # nothing received yet: nothing may be sent
    with pytest.raises(AgentProtocolError, match=r"init-runelet cannot send exec_response now$"):
        one(ExecResponse(0))
    response = frame(b'{"type":"exec_response","exit_code":0,"error":""}')
    assert error_of(RUNELET, response + response) == (
        "agent protocol: unexpected exec_response message: one response per connection"
    )
    with pytest.raises(AgentProtocolError, match=r"runelet cannot send kill now$"):
        AgentConnection(RUNELET).send(Kill(15))  # kill only follows a request
    init.receive_data(AgentConnection(RUNELET).send(ATTEST))
    init.next_event()
    with pytest.raises(AgentProtocolError, match=r"init-runelet cannot send exec_response now$"):
        init.send(ExecResponse(0))  # an attest is answered with attest_response


def test_send_validates_what_the_peer_would_reject():
    with pytest.raises(AgentProtocolError, match=r"argv: must not be empty$"):
        AgentConnection(RUNELET).send(ExecRequest([], []))


def test_end_of_connection():
    data = AgentConnection(RUNELET).send(EXEC)
    conn = AgentConnection(INIT)
    conn.receive_data(data[:2])
    conn.receive_data(b"")
    with pytest.raises(AgentProtocolError) as err:
        conn.next_event()
    assert str(err.value) == "agent protocol: connection closed inside a frame header (2 of 4 bytes)"
    conn = AgentConnection(INIT)
    conn.receive_data(data[:10], (3, 4, 5))
    conn.receive_data(b"")
    with pytest.raises(AgentProtocolError, match=r"closed inside a frame \(6 of \d+ bytes\)$"):
        conn.next_event()
    conn = AgentConnection(INIT)
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
    with pytest.raises(AgentProtocolError, match=r"data after the end of the connection$"):
        conn.receive_data(b"x")


def test_errors_are_sticky():
    conn = AgentConnection(INIT)
    conn.receive_data(frame(b"{"))
    with pytest.raises(AgentProtocolError) as first:
        conn.next_event()
    with pytest.raises(AgentProtocolError) as second:
        conn.next_event()
    assert second.value is first.value


def test_over_a_real_socket_with_scm_rights():
    """The documented use: the exec frame and stdio in one sendmsg."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        runelet, init = AgentConnection(RUNELET), AgentConnection(INIT)
        socket.send_fds(a, [runelet.send(EXEC)], [r, w, w])
        a.sendall(runelet.send(Kill(15)))
        a.shutdown(socket.SHUT_WR)
        got: list[object] = []
        while not got or got[-1] is not CLOSED:
            data, fds, _flags, _addr = socket.recv_fds(b, 7, 3)  # small reads on purpose
            init.receive_data(data, fds)
            got.extend(events(init))
        assert got == [EXEC, Kill(15), CLOSED]
        stdio = got[0].stdio
        assert [os.fstat(fd).st_ino for fd in stdio] == [os.fstat(r).st_ino] * 3
        for fd in stdio:
            os.close(fd)
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


# -- fuzzing ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=8,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["exec", "attest", "kill", "exec_response", "attest_response", "x"])},
    optional={k: json_values for k in ("argv", "env", "cwd", "tty", "report_data", "target_info", "is_ra",
                                       "quote_type", "sig", "exit_code", "error", "report")},
)  # fmt: skip


def feed_all(role: str, data: bytes, cuts: list[int], fds: int) -> None:
    conn = AgentConnection(role)
    pieces = [data[i:j] for i, j in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)]
    try:
        for n, piece in enumerate(pieces):
            conn.receive_data(piece, list(range(100, 100 + fds)) if n == 0 else [])
            events(conn)
        conn.receive_data(b"")
        events(conn)
    except AgentProtocolError:
        pass


@FUZZ
@given(st.sampled_from([INIT, RUNELET]), st.binary(max_size=300), st.lists(st.integers(0, 300)), st.integers(0, 4))
def test_fuzz_raw_bytes(role, data, cuts, fds):
    feed_all(role, data, [c for c in cuts if c <= len(data)], fds)


@settings(FUZZ, max_examples=150)
@given(st.sampled_from([INIT, RUNELET]), st.lists(message_like, min_size=1, max_size=3), st.integers(0, 4))
def test_fuzz_well_framed_json(role, messages, fds):
    import json

    data = b"".join(frame(json.dumps(m).encode()) for m in messages)
    feed_all(role, data, [], fds)


@FUZZ
@given(
    st.lists(st.text(), min_size=1),
    st.lists(st.text().map(lambda s: "K=" + s)),
    st.text().map(lambda s: "/" + s),
    st.booleans(),
)
def test_fuzz_exec_round_trip(argv, env, cwd, tty):
    msg = ExecRequest(argv, env, cwd, tty)
    try:
        data = AgentConnection(RUNELET).send(msg)
    except AgentProtocolError:
        assert any("\0" in s for s in [*argv, *env, cwd])
        return
    init = AgentConnection(INIT)
    init.receive_data(data, [0, 1, 2])
    assert events(init) == [msg]
