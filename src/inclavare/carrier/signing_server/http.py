"""The socket side of the signing server: HTTP/1.0 over TCP, TLS and mTLS, around :mod:`.service`.

The standard library's threading HTTP server: the API is five routes and a
handful of requests per container start, and the verified client
certificate is at hand (``SSLSocket.getpeercert``), which an ASGI server
does not pass on. The TLS handshake runs in the connection's own thread,
under a deadline, so a client that connects and says nothing holds up
nobody but itself; every read has :data:`TIMEOUT`. Bodies over
:data:`.service.MAX_BODY` are refused from their Content-Length, unread.
"""

from __future__ import annotations

import http.server
import logging
import os
import signal
import socket
import ssl
import threading
from typing import Any

from .service import MAX_BODY, Request, Response, SigningService

log = logging.getLogger("inclavare.signing_server")

TIMEOUT = 10.0  # seconds for the handshake and for each read of a request


def tls_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """A server context (TLS 1.2+); with `client_ca`, clients must present a certificate it issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class SigningHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: SigningService, context: ssl.SSLContext | None) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)
        self.service = service
        self.context = context

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{'https' if self.context else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        assert isinstance(request, socket.socket)  # a stream server's request is its connection
        if self.context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(TIMEOUT)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.info("TLS handshake with %s:%s failed: %s", *client_address[:2], getattr(exc, "reason", None) or exc)
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: SigningHTTPServer
    server_version = "inclavare-signing-server"
    sys_version = ""
    timeout = TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _dispatch(self) -> None:
        body = b""
        if self.command in ("POST", "PUT", "PATCH"):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._send(Response(411, b"Content-Length required\n"))
                return
            if int(length) > MAX_BODY:
                self._send(Response(413, f"body larger than {MAX_BODY} bytes\n".encode()))
                return
            body = self.rfile.read(int(length))
        cert = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) else None
        request = Request(self.command, self.path, body, self.headers.get("Authorization"),
                          f"{self.client_address[0]}:{self.client_address[1]}", cert)  # fmt: skip
        self._send(self.server.service.handle(request))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def serve(server: SigningHTTPServer, ready_file: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT; `ready_file` gets ``host:port`` once the socket listens."""
    if ready_file:
        host, port = server.address
        tmp = ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{host}:{port}\n")
        os.replace(tmp, ready_file)

    def stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("signing server listening on %s", server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
