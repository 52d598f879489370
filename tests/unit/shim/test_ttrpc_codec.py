"""The ttrpc codec on its own: the frame layout upstream writes, partial reads,
what the server answers with an error status, malformed input, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inclavare.shim import pb, ttrpc
from inclavare.shim.errors import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, TtrpcProtocolError
from inclavare.shim.ttrpc import CLIENT, CLOSED, NEED_DATA, SERVER, Connection, Refused, Request, Response

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def header(length: int, stream: int, kind: int, flags: int = 0) -> bytes:
    return struct.pack(">IIBB", length, stream, kind, flags)


def events(conn: Connection) -> list[object]:
    out: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if event is CLOSED:
            break
    return out


def request_bytes(service: str = "containerd.task.v2.Task", method: str = "State", payload: bytes = b"x") -> bytes:
    return pb.ttrpc.Request(service=service, method=method, payload=payload).SerializeToString()


def test_request_frame_is_upstreams_layout():
    # channel.go writeMessageHeader: big-endian length and stream id, type, flags
    client = Connection(CLIENT)
    stream, data = client.request("svc", "M", b"\x01\x02", timeout_nano=5, metadata={"k": "v"})
    assert stream == 1
    length, sid, kind, flags = struct.unpack(">IIBB", data[:10])
    assert (sid, kind, flags, length) == (1, ttrpc.REQUEST, 0, len(data) - 10)
    req = pb.ttrpc.Request.FromString(data[10:])
    assert (req.service, req.method, req.payload, req.timeout_nano) == ("svc", "M", b"\x01\x02", 5)
    assert [(kv.key, kv.value) for kv in req.metadata] == [("k", "v")]
    assert client.request("svc", "M", b"")[0] == 3  # client streams are odd and increase


def test_round_trip_out_of_order_responses():
    client, server = Connection(CLIENT), Connection(SERVER)
    s1, f1 = client.request("svc", "Wait", b"w")
    s2, f2 = client.request("svc", "Kill", b"k")
    server.receive_data(f1 + f2)
    got = events(server)
    assert [(r.stream_id, r.method, r.payload) for r in got] == [(s1, "Wait", b"w"), (s2, "Kill", b"k")]
    # the Kill is answered before the Wait, on its own stream
    client.receive_data(server.respond(s2, b"killed") + server.respond(s1, code=5, message="not found"))
    answers = events(client)
    assert [(a.stream_id, a.payload, a.code, a.message) for a in answers] == [
        (s2, b"killed", 0, ""),
        (s1, b"", 5, "not found"),
    ]


def test_one_byte_at_a_time():
    client, server = Connection(CLIENT), Connection(SERVER)
    _, data = client.request("svc", "Create", bytes(range(256)))
    seen: list[object] = []
    for i in range(len(data)):
        server.receive_data(data[i : i + 1])
        seen += events(server)
    assert len(seen) == 1
    assert isinstance(seen[0], Request)
    assert seen[0].payload == bytes(range(256))


def test_eof_between_frames_is_closed_and_inside_a_frame_is_an_error():
    server = Connection(SERVER)
    server.receive_data(b"")
    assert events(server) == [CLOSED]
    server = Connection(SERVER)
    server.receive_data(header(50, 1, 1) + b"short")
    server.receive_data(b"")
    with pytest.raises(TtrpcProtocolError, match=r"connection closed inside a frame \(5 of 50 bytes\)"):
        server.next_event()
    with pytest.raises(TtrpcProtocolError):  # the connection stays dead
        server.next_event()


def test_oversized_frame_is_skipped_and_refused_on_its_stream():
    # channel.go recv: discard the body, answer ResourceExhausted on that stream, keep going
    server = Connection(SERVER, max_message=100)
    server.receive_data(header(1000, 7, 1) + b"a" * 300)
    (refused,) = events(server)
    assert isinstance(refused, Refused)
    assert (refused.stream_id, refused.code) == (7, RESOURCE_EXHAUSTED)
    assert refused.message == "message length 1000 exceed maximum message size of 100"
    good = request_bytes()
    server.receive_data(b"b" * 700 + header(len(good), 9, 1) + good)
    (req,) = events(server)
    assert (req.stream_id, req.method) == (9, "State")


def test_undecodable_request_and_even_stream_are_refused_not_fatal():
    server = Connection(SERVER)
    junk = b"\xff\xff\xff"
    good = request_bytes()
    server.receive_data(header(len(junk), 1, 1) + junk + header(len(good), 2, 1) + good)
    first, second = events(server)
    assert (first.stream_id, first.code) == (1, INVALID_ARGUMENT)
    assert first.message.startswith("unmarshal request error:")
    assert (second.stream_id, second.code, second.message) == (
        2, INVALID_ARGUMENT, "StreamID must be odd for client initiated streams")  # fmt: skip


def test_other_frame_types_are_ignored():
    server = Connection(SERVER)
    good = request_bytes()
    server.receive_data(header(3, 1, 3) + b"abc" + header(len(good), 3, 1) + good)
    (req,) = events(server)
    assert req.stream_id == 3


def test_client_drops_responses_to_no_call_of_its_own():
    client = Connection(CLIENT)
    stream, _ = client.request("s", "m", b"")
    body = pb.ttrpc.Response(payload=b"p").SerializeToString()
    client.receive_data(header(len(body), 41, 2) + body + header(len(body), stream, 2) + body)
    (resp,) = events(client)
    assert isinstance(resp, Response)
    assert resp.stream_id == stream
    client.receive_data(header(len(body), stream, 2) + body)  # a second answer to the same call
    assert events(client) == []


def test_roles_send_only_their_kind():
    with pytest.raises(TtrpcProtocolError):
        Connection(SERVER).request("s", "m", b"")
    with pytest.raises(TtrpcProtocolError):
        Connection(CLIENT).respond(1)


def test_response_too_large_becomes_resource_exhausted():
    server = Connection(SERVER, max_message=64)
    frame = server.respond(5, b"z" * 1000)
    resp = pb.ttrpc.Response.FromString(frame[10:])
    assert resp.status.code == RESOURCE_EXHAUSTED
    assert resp.payload == b""


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_fuzz_never_raises_anything_but_protocol_errors(data, cuts):
    """Arbitrary bytes, split anywhere: events, or TtrpcProtocolError; never anything else."""
    for role in (SERVER, CLIENT):
        conn = Connection(role, max_message=256)
        if role == CLIENT:
            for _ in range(8):
                conn.request("s", "m", b"")
        pos = 0
        try:
            for cut in [*cuts, len(data)]:
                conn.receive_data(data[pos : pos + cut])
                pos += cut
                events(conn)
            conn.receive_data(b"")
            events(conn)
        except TtrpcProtocolError:
            pass


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=20), st.binary(max_size=300)), max_size=6),
       st.integers(1, 50))  # fmt: skip
def test_fuzz_round_trip_any_split(calls, chunk):
    client, server = Connection(CLIENT), Connection(SERVER)
    data = b"".join(client.request(s, m, p)[1] for s, m, p in calls)
    got: list[object] = []
    for i in range(0, len(data), chunk):
        server.receive_data(data[i : i + chunk])
        got += events(server)
    assert [(r.service, r.method, r.payload) for r in got] == calls
    assert [r.stream_id for r in got] == list(range(1, 2 * len(calls), 2))
