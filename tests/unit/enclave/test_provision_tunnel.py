"""The provisioning tunnel in one process: the enclave side's TLS over connections the host relay makes.

Both sides are the real code (tunnel.py, host_relay.py) talking over a real spawn
channel (runtime/process/messages.py) and control socketpair; the broker is an
HTTPS server on 127.0.0.1 with a certificate of a throw-away CA.
"""

from __future__ import annotations

import base64
import http.server
import socket
import ssl
import threading

import httpx
import pytest

from inclavare.enclave.provision.host_relay import DONE, HostRelay
from inclavare.enclave.provision.pin import BrokerNotTrusted, BrokerTrust, client_context
from inclavare.enclave.provision.tunnel import Tunnel, TunnelTransport
from inclavare.errors import InitFailed
from inclavare.runtime.process.messages import ERROR, Channel
from inclavare.testing.pki import CertificateAuthority, spki_pin

BIG = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer, so both directions must wait for POLLOUT


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(b"hello from the broker")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """(url, CA, leaf certificate PEM) of an HTTPS server."""
    ca = CertificateAuthority("test broker CA")
    cert, key = ca.write_server(str(tmp_path_factory.mktemp("broker")), "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    with open(cert, "rb") as f:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca, f.read()
    server.shutdown()
    server.server_close()


class Harness:
    """rune create's relay in a thread, the enclave side's httpx client in the test."""

    def __init__(self, port: int, trust: BrokerTrust, relay_class: type[HostRelay] = HostRelay) -> None:
        self.host_ch, self.init_ch = Channel.pair()
        init_ctl, host_ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.relay = relay_class(self.host_ch, host_ctl, {("127.0.0.1", port)}, timeout=5.0)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.client = httpx.Client(transport=TunnelTransport(Tunnel(self.init_ch, init_ctl, trust)), timeout=5.0)
        self.control = init_ctl

    def _run(self) -> None:
        try:
            self.relay.run()
        except BaseException as exc:
            self.failure = exc

    def finish(self, kind: str = DONE, payload: object = None) -> None:
        self.client.close()
        self.init_ch.send(kind, payload)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.control.close()
        for ch in (self.host_ch, self.init_ch):
            ch.close()


def pinned(ca: CertificateAuthority, pins: tuple[str, ...] = ()) -> BrokerTrust:
    return BrokerTrust([], client_context(ca.pem), tuple(base64.b64decode(p) for p in pins), True)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_https_through_the_tunnel(broker):
    url, ca, leaf = broker
    h = Harness(port_of(url), pinned(ca, (spki_pin(leaf),)))
    try:
        assert h.client.get(f"{url}/kbs/v0/auth").content == b"hello from the broker"
        assert h.client.post(f"{url}/echo", content=BIG).content == BIG  # keep-alive: the same connection
        assert len(h.relay.pumps) == 1
    finally:
        h.finish()
    assert h.failure is None
    assert h.relay.pumps == [] or all(p.closed for p in h.relay.pumps)


@pytest.mark.parametrize("wrong", ["ca", "key-pin"])
def test_another_broker_is_refused_inside_the_handshake(broker, wrong):
    url, ca, _leaf = broker
    other = CertificateAuthority("the host's own CA")
    trust = pinned(other) if wrong == "ca" else pinned(ca, (spki_pin(other.issue("127.0.0.1")[0]),))
    h = Harness(port_of(url), trust)
    try:
        with pytest.raises(BrokerNotTrusted) as refused:
            h.client.get(f"{url}/kbs/v0/auth")
    finally:
        h.finish()
    reason = "certificate verify failed" if wrong == "ca" else "its key is not in kbs.pin_sha256"
    assert str(refused.value).startswith(f"https://127.0.0.1:{port_of(url)}: not the pinned broker: ")
    assert reason in str(refused.value) or "unable to get local issuer certificate" in str(refused.value)


def test_the_relay_dials_only_the_containers_replicas(broker):
    url, ca, _leaf = broker
    h = Harness(port_of(url) + 1 if port_of(url) < 65535 else 1, pinned(ca))
    try:
        with pytest.raises(httpx.ConnectError, match=r"'127.0.0.1':\d+ is not one of the container's enclave.kbs.url"):
            h.client.get(f"{url}/kbs/v0/auth")
    finally:
        h.finish()
    assert h.failure is None


def test_a_refused_connection_is_a_transport_error(broker):
    _url, ca, _leaf = broker
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = Harness(port, pinned(ca))
    try:
        with pytest.raises(httpx.ConnectError, match=f"rune could not connect to 127.0.0.1:{port}: Connection refused"):
            h.client.get(f"https://127.0.0.1:{port}/kbs/v0/auth")
    finally:
        h.finish()


class EditingRelay(HostRelay):
    """A hostile host: the broker's answer changed at byte `at` (after the handshake) by `edit`."""

    at = 6000  # the server's first flight is a few KiB; its answer to the request comes after that

    @staticmethod
    def edit(data: bytes) -> bytes | None:
        return data[:-1] + bytes([data[-1] ^ 1])  # one bit flipped; None: the connection cut there

    def open(self, host: str, port: int) -> socket.socket:
        real = super().open(host, port)
        mine, theirs = socket.socketpair()

        def forward(src: socket.socket, dst: socket.socket, at: int | None) -> None:
            seen = 0
            try:
                while data := src.recv(65536):
                    if at is not None and seen <= at < seen + len(data):
                        changed = self.edit(data[: at - seen + 1])
                        if changed is None:
                            dst.sendall(data[: at - seen])
                            break
                        data = changed + data[at - seen + 1 :]
                    seen += len(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (dst, src):  # shutdown wakes the other thread's recv; close alone would not
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=forward, args=(theirs, real, None), daemon=True).start()
        threading.Thread(target=forward, args=(real, theirs, self.at), daemon=True).start()
        return mine


class CuttingRelay(EditingRelay):
    @staticmethod
    def edit(data: bytes) -> bytes | None:
        return None


def test_a_tampered_record_is_refused_not_retried(broker):
    url, ca, _leaf = broker
    h = Harness(port_of(url), pinned(ca), EditingRelay)
    try:
        with pytest.raises(BrokerNotTrusted, match=r"^the TLS session with the broker was tampered with: "):
            h.client.post(f"{url}/echo", content=BIG[:20000])
    finally:
        h.finish()


@pytest.mark.parametrize("at", [100, 6000])
def test_a_cut_connection_is_a_transport_error(broker, at):
    """In the handshake or in the answer: what a dying replica does too, so the client may retry (kbs/client.py).
    Before, OpenSSL 3's unexpected EOF read as a clean end (CPython sets OP_IGNORE_UNEXPECTED_EOF)."""
    url, ca, _leaf = broker

    class Cut(CuttingRelay):
        pass

    Cut.at = at
    h = Harness(port_of(url), pinned(ca), Cut)
    try:
        with pytest.raises(httpx.TransportError, match="the connection was cut"):
            h.client.post(f"{url}/echo", content=BIG[:20000])
    finally:
        h.finish()


def test_the_enclave_sides_error_ends_the_relay_in_one_line(broker):
    url, ca, _leaf = broker
    h = Harness(port_of(url), pinned(ca))
    h.finish(ERROR, {"msg": "secret provisioning: KBS answered 401 AttestationError: attestation failed"})
    assert isinstance(h.failure, InitFailed)
    assert str(h.failure) == "secret provisioning: KBS answered 401 AttestationError: attestation failed"
