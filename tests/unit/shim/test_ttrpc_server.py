"""The ttrpc server loop and client over a real unix socket: dispatch, error
statuses as containerd reads them, concurrency on one connection, peer check."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

from inclavare.log import Logger
from inclavare.shim import pb, ttrpc
from inclavare.shim.client import CallError, Client
from inclavare.shim.errors import INTERNAL, INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, NotFound
from inclavare.shim.server import Server

SVC = "containerd.task.v2.Task"


class Handlers:
    def __init__(self) -> None:
        self.released = threading.Event()

    def state(self, req):
        if req.id == "missing":
            raise NotFound("container not created")
        if req.id == "bug":
            raise ZeroDivisionError("division by zero")
        return pb.api.StateResponse(id=req.id, pid=42, status=2)

    def wait(self, req):
        self.released.wait(10)
        return pb.api.WaitResponse(exit_status=7)

    def kill(self, req):
        self.released.set()
        return pb.wkt.Empty()


@pytest.fixture
def served(tmp_path):
    # the socket in a directory every user can reach (test_another_user_is_refused)
    sockdir = tempfile.mkdtemp(prefix="ttrpc-test-", dir="/tmp")
    os.chmod(sockdir, 0o755)
    handlers = Handlers()
    services = {SVC: {"State": (pb.api.StateRequest, handlers.state), "Wait": (pb.api.WaitRequest, handlers.wait),
                      "Kill": (pb.api.KillRequest, handlers.kill)}}  # fmt: skip
    log_path = str(tmp_path / "shim.log")
    server = Server(services, Logger(log_path, "text", debug=False))
    path = os.path.join(sockdir, "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    server.serve(listener)
    yield path, server, log_path
    server.close()
    listener.close()
    shutil.rmtree(sockdir)


def test_call_and_response(served):
    path, _, _ = served
    client = Client(path)
    resp = client.call(SVC, "State", pb.api.StateRequest(id="c1"), pb.api.StateResponse)
    assert (resp.id, resp.pid, resp.status) == ("c1", 42, 2)
    client.close()


def test_errors_carry_grpc_codes_and_one_line(served):
    path, _, log_path = served
    client = Client(path)
    with pytest.raises(CallError) as err:
        client.call(SVC, "State", pb.api.StateRequest(id="missing"), pb.api.StateResponse)
    assert (err.value.code, str(err.value)) == (NOT_FOUND, "container not created")
    with pytest.raises(CallError) as err:
        client.call(SVC, "State", pb.api.StateRequest(id="bug"), pb.api.StateResponse)
    assert (err.value.code, str(err.value)) == (INTERNAL, "shim internal error: ZeroDivisionError: division by zero")
    with open(log_path) as f:
        log = f.read()
    assert "internal error: ZeroDivisionError" in log
    assert "Traceback" not in log
    # ttrpc's own wording for what is not served (services.go resolve)
    with pytest.raises(CallError) as err:
        client.call("nope.Service", "X", pb.wkt.Empty(), pb.wkt.Empty)
    assert (err.value.code, str(err.value)) == (UNIMPLEMENTED, "service nope.Service")
    with pytest.raises(CallError) as err:
        client.call(SVC, "Checkpoint", pb.wkt.Empty(), pb.wkt.Empty)
    assert (err.value.code, str(err.value)) == (UNIMPLEMENTED, "method Checkpoint")
    # the connection survives every refusal
    assert client.call(SVC, "State", pb.api.StateRequest(id="c2"), pb.api.StateResponse).id == "c2"


def test_undecodable_payload_is_invalid_argument(served):
    path, _, _ = served
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    codec = ttrpc.Connection(ttrpc.CLIENT)
    stream, frame = codec.request(SVC, "State", b"\xff\xff")
    sock.sendall(frame)
    codec.receive_data(sock.recv(65536))
    resp = codec.next_event()
    assert resp.stream_id == stream
    assert resp.code == INVALID_ARGUMENT
    assert resp.message.startswith("ttrpc: error unmarshalling payload")
    sock.close()


def test_a_blocked_call_does_not_hold_up_the_connection(served):
    """containerd keeps Wait pending and sends Kill on the same connection."""
    path, _, _ = served
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.settimeout(5)
    codec = ttrpc.Connection(ttrpc.CLIENT)
    wait_stream, wait_frame = codec.request(SVC, "Wait", pb.api.WaitRequest(id="c").SerializeToString())
    kill_stream, kill_frame = codec.request(SVC, "Kill", pb.api.KillRequest(id="c").SerializeToString())
    sock.sendall(wait_frame + kill_frame)
    order = []
    while len(order) < 2:
        event = codec.next_event()
        if event is ttrpc.NEED_DATA:
            codec.receive_data(sock.recv(65536))
        else:
            order.append(event.stream_id)
    assert order == [kill_stream, wait_stream]
    sock.close()


def test_idle_waits_for_answers_in_flight(served):
    path, server, _ = served
    client = Client(path)
    t = threading.Thread(target=client.call, args=(SVC, "Wait", pb.api.WaitRequest(id="c"), pb.api.WaitResponse))
    t.start()
    time.sleep(0.2)
    assert not server.idle(0.1)  # the Wait is pending
    Client(path).call(SVC, "Kill", pb.api.KillRequest(id="c"), pb.wkt.Empty)
    assert server.idle(5)
    t.join(5)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_user_is_refused(served):
    """Only the shim's own user may speak to it (ttrpc UnixSocketRequireSameUser)."""
    path, _, log_path = served
    os.chmod(path, 0o777)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(ttrpc.Connection(ttrpc.CLIENT).request(SVC, "State", b"")[1])
            got = sock.recv(100)
            os.write(w, b"closed" if got == b"" else b"answered")
        except (BrokenPipeError, ConnectionResetError):  # closed before our request went out
            os.write(w, b"closed")
        except OSError as exc:
            os.write(w, f"error {exc}".encode())
        os._exit(0)
    os.close(w)
    result = os.read(r, 100)
    os.waitpid(pid, 0)
    assert result == b"closed"
    with open(log_path) as f:
        assert "refused a connection from uid 65534" in f.read()
