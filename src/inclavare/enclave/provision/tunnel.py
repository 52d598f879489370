"""The enclave side of the tunnel: HTTPS to the broker over connections rune makes.

The init-runelet's network namespace may have no route out, so it asks
`rune create` for each TCP connection (``kbs-connect {host, port}`` on the
spawn channel; runtime/process/messages.py) and gets one end of a fresh
socketpair back to talk through, while rune splices the other end to the
broker (host_relay.py). Everything on that socketpair is TLS made *here*: the
certificate is checked here against the enclave's pin (pin.py), so rune
carries bytes it can neither read nor forge.

httpx runs unchanged on top: :class:`TunnelTransport` is an httpx transport
over an httpcore connection pool whose network backend is :class:`Tunnel`
(httpcore's documented seam for custom networking).
"""

from __future__ import annotations

import select
import socket
import ssl

import httpcore
import httpx

from .pin import BrokerNotTrusted, BrokerTrust
from .spawn import CONNECT, CONNECTED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import Channel


class Tunnel(httpcore.NetworkBackend):
    """Connections rune makes for us, handed over as socketpair ends (SCM_RIGHTS)."""

    def __init__(self, channel: Channel, control: socket.socket, trust: BrokerTrust) -> None:
        self.channel = channel
        self.control = control  # AF_UNIX, one end of the pair enclave_setup made before the fork
        self.trust = trust

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,  # httpcore's; nothing to set on a socketpair
    ) -> httpcore.NetworkStream:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.control, [b"c"], [theirs.fileno()])
        finally:
            theirs.close()
        self.channel.send(CONNECT, {"host": host, "port": port})
        reply = self.channel.expect(CONNECTED)
        error = reply.get("error") if isinstance(reply, dict) else "a malformed reply"
        if error is not None:
            mine.close()
            raise httpcore.ConnectError(f"rune could not connect to {host}:{port}: {error}")
        return TunnelStream(mine, self.trust, f"https://{host}:{port}")


class TunnelStream(httpcore.NetworkStream):
    """One connection: first the raw socketpair end, then the TLS session over it."""

    def __init__(self, sock: socket.socket, trust: BrokerTrust, origin: str) -> None:
        self.sock = sock
        self.trust = trust
        self.origin = origin  # for messages: the broker it is meant to be

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(max_bytes)
        except ssl.SSLError as exc:
            if _cut(exc):  # a replica dying mid-answer looks the same: the client retries
                raise httpcore.ReadError("the connection was cut in the middle of an answer") from None
            # A record that fails its MAC is forged, not bad luck: final.
            raise BrokerNotTrusted(f"the TLS session with the broker was tampered with: {exc.reason or exc}") from None
        except OSError as exc:
            raise _transport(exc, httpcore.ReadTimeout, httpcore.ReadError) from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(buffer)
        except OSError as exc:  # ssl.SSLError included: nothing we send can be forged on the way
            raise _transport(exc, httpcore.WriteTimeout, httpcore.WriteError) from None

    def close(self) -> None:
        self.sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        """The handshake, then the pin: nothing is written to the broker before both passed."""
        self.sock.settimeout(timeout)
        origin = self.origin
        try:
            # Ragged EOFs are errors: a connection cut short must not pass for a complete answer.
            tls = ssl_context.wrap_socket(self.sock, server_hostname=server_hostname, suppress_ragged_eofs=False)
        except ssl.SSLCertVerificationError as exc:
            raise BrokerNotTrusted(f"{origin}: not the pinned broker: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            if _cut(exc):
                raise httpcore.ConnectError(f"{origin}: the connection was cut during the TLS handshake") from None
            raise BrokerNotTrusted(f"{origin}: TLS handshake failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise _transport(exc, httpcore.ConnectTimeout, httpcore.ConnectError) from None
        self.trust.check_peer(tls.getpeercert(binary_form=True), origin)
        return TunnelStream(tls, self.trust, origin)

    def get_extra_info(self, info: str) -> object:
        if info == "ssl_object" and isinstance(self.sock, ssl.SSLSocket):
            return self.sock  # httpcore asks it for the ALPN protocol
        if info == "is_readable":  # an idle keep-alive connection the peer closed
            return bool(select.select([self.sock], [], [], 0)[0])
        return None


def _cut(exc: ssl.SSLError) -> bool:
    """The peer closed without close_notify: EOF, not a forged record (OpenSSL 3 reports it as
    SSL_R_UNEXPECTED_EOF_WHILE_READING, pin.py keeps it an error)."""
    eof = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    return isinstance(exc, eof) or exc.reason == "UNEXPECTED_EOF_WHILE_READING"


def _transport(exc: BaseException, timeout: type[Exception], other: type[Exception]) -> Exception:
    kind = timeout if isinstance(exc, TimeoutError) else other
    return kind(f"{type(exc).__name__}: {exc}")


# httpcore's errors as httpx's (httpx/_transports/default.py maps the same way), most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
)


class TunnelTransport(httpx.BaseTransport):
    """httpx over :class:`Tunnel`: responses are read whole (a KBS answers small JSON documents)."""

    def __init__(self, tunnel: Tunnel) -> None:
        self._pool = httpcore.ConnectionPool(ssl_context=tunnel.trust.context, network_backend=tunnel)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                           target=request.url.raw_path)  # fmt: skip
        content = request.read()
        core = httpcore.Request(request.method, url, headers=request.headers.raw, content=content,
                                extensions=request.extensions)  # fmt: skip
        try:
            response = self._pool.handle_request(core)
            try:
                body = response.read()
            finally:
                response.close()
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            kind = next((mine for theirs, mine in _ERRORS if isinstance(exc, theirs)), httpx.TransportError)
            raise kind(str(exc), request=request) from None
        return httpx.Response(response.status, headers=response.headers, content=body, request=request)

    def close(self) -> None:
        self._pool.close()
