"""Run the broker: uvicorn serving the starlette app, HTTPS when the config has a certificate.

The listening socket is bound here, before uvicorn starts, so that port 0
works (any free port) and ``ready_file`` can say which port it is: the
kernel queues connections from the moment of ``listen()``, so a client that
reads the file may connect at once. SIGTERM/SIGINT stop uvicorn gracefully
(in-flight requests finish); storage is closed afterwards.
"""

from __future__ import annotations

import logging
import os
import socket

import uvicorn

from ..config import KbsConfig
from ..service import KbsService
from .app import create_app

log = logging.getLogger("inclavare.kbs")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
    # Nagle + delayed ACK cost ~40 ms per keep-alive request (headers and body are two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def write_ready(path: str, host: str, port: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{host}:{port}\n")
    os.replace(tmp, path)


def serve(config: KbsConfig, *, ready_file: str | None = None, service: KbsService | None = None) -> None:
    """Serve until stopped."""
    service = service if service is not None else KbsService.from_config(config)
    http = config.http
    tls = http.tls_cert is not None
    app = create_app(service, tls=tls)
    sock = bind(http.host, http.port)
    port = sock.getsockname()[1]
    uv = uvicorn.Config(
        app,
        ssl_certfile=http.tls_cert,
        ssl_keyfile=http.tls_key,
        log_config=None,  # the CLI configures logging; uvicorn must not replace it
        access_log=False,  # the audit log records what matters, without cookies or tokens
        lifespan="off",
        timeout_keep_alive=15,
        server_header=False,
    )
    server = uvicorn.Server(uv)
    log.info(
        "KBS (replica %s) listening on %s://%s:%d", config.audit.replica, "https" if tls else "http", http.host, port
    )
    if ready_file is not None:
        write_ready(ready_file, http.host, port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        service.close()
