"""Run the broker: uvicorn serving the starlette app, HTTPS when the config has a certificate.

The listening socket is bound here, before uvicorn starts, so that port 0
works (any free port) and ``ready_file`` can say which port it is: the
kernel queues connections from the moment of ``listen()``, so a client that
reads the file may connect at once. SIGTERM/SIGINT stop uvicorn gracefully
(in-flight requests finish); storage is closed afterwards. SIGHUP re-reads
the config file and takes its ``storage.kek`` (a KEK rotation without a
restart, docs/kbs.md) if the new keyring reads every row; otherwise the
keys in use stay and the refusal is logged. Nothing else is reloaded.
Under systemd (``Type=notify``) the service manager is told ``READY=1`` at the
moment ``ready_file`` is written, and ``STOPPING=1`` on the way out (:mod:`.notify`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from ..config import KbsConfig, load_config
from ..errors import ConfigError
from ..preflight import check_tls
from ..service import KbsService
from .app import create_app
from .notify import sd_notify
from .transport import http_protocol

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


def listen(config: KbsConfig) -> tuple[socket.socket, bool]:
    """The listening socket of ``http.listen``, and whether it serves TLS (its pair checked first)."""
    http = config.http
    tls = http.tls_cert is not None and http.tls_key is not None
    if http.tls_cert is not None and http.tls_key is not None:
        check_tls(http.tls_cert, http.tls_key, config.source)
    try:
        return bind(http.host, http.port), tls
    except OSError as exc:
        where = f"cannot listen on {http.host}:{http.port}: {exc.strerror}"
        raise ConfigError("http.listen", where, config.source) from None


def write_ready(path: str, host: str, port: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{host}:{port}\n")
    os.replace(tmp, path)


def serve(
    config: KbsConfig,
    *,
    ready_file: str | None = None,
    service: KbsService | None = None,
    config_path: str | None = None,
) -> None:
    """Serve until stopped; with ``config_path``, SIGHUP reloads ``storage.kek`` from it."""
    sock, tls = listen(config)
    try:
        service = service if service is not None else KbsService.from_config(config)
    except BaseException:
        sock.close()
        raise
    if config_path is not None and threading.current_thread() is threading.main_thread():
        _reload_on_sighup(service, config_path)
    try:
        _run(config, service, sock, tls, ready_file)
    finally:
        sock.close()
        service.close()


def _run(config: KbsConfig, service: KbsService, sock: socket.socket, tls: bool, ready_file: str | None,
         notify: bool = True) -> None:  # fmt: skip
    """uvicorn on `sock` until stopped. ``notify``: tell systemd READY/STOPPING (a worker of
    ``--workers`` does not: systemd listens to the main process only, NotifyAccess=main)."""
    http = config.http
    port = sock.getsockname()[1]
    uv = uvicorn.Config(
        create_app(service, tls=tls),
        ssl_certfile=http.tls_cert,
        ssl_keyfile=http.tls_key,
        log_config=None,  # the CLI configures logging; uvicorn must not replace it
        access_log=False,  # the audit log records what matters, without cookies or tokens
        lifespan="off",
        timeout_keep_alive=15,
        server_header=False,
        # X-Forwarded-For is read only where rate_limit.trust_forwarded_for says so (middleware.py
        # ``client_address``). uvicorn's default would replace the peer address with that header on
        # any connection from 127.0.0.1 (its forwarded_allow_ips), so a local client could pick the
        # address the limiter and the audit log see; it is also one ASGI layer less per request.
        proxy_headers=False,
        http=http_protocol(),  # one socket write per response (transport.py)
    )
    scheme = "https" if tls else "http"
    log.info("KBS (replica %s) listening on %s://%s:%d", config.audit.replica, scheme, http.host, port)
    if ready_file is not None:
        write_ready(ready_file, http.host, port)
    if notify:
        sd_notify(f"READY=1\nSTATUS=listening on {scheme}://{http.host}:{port}")
    try:
        with _return_after_shutdown():
            uvicorn.Server(uv).run(sockets=[sock])
    finally:
        if notify:
            sd_notify("STOPPING=1")


@contextlib.contextmanager
def _return_after_shutdown() -> Iterator[None]:
    """Let a SIGTERM/SIGINT end in serve's cleanup (storage closed, STOPPING=1) and exit status 0.

    uvicorn shuts down gracefully, restores the handlers it found and raises
    the signal again (uvicorn/server.py, ``capture_signals``): with the default
    handler the process died right there, before ``service.close()``. The
    handler it finds is now this one, which only logs; the caller's come back after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopped(signum: int, frame: FrameType | None) -> None:
        log.info("stopped by %s", signal.Signals(signum).name)

    before = {sig: signal.signal(sig, stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _reload_on_sighup(service: KbsService, config_path: str) -> None:
    lock = threading.Lock()

    def reload() -> None:
        with lock:  # two SIGHUPs in a row reload twice, one after the other
            try:
                service.reload_keys(load_config(config_path))
            except Exception as exc:  # a bad reload must not stop a broker that serves
                log.error("SIGHUP: storage.kek not reloaded, the keys in use stay: %s", exc)

    def on_sighup(signum: int, frame: FrameType | None) -> None:
        # The handler runs on the event loop's thread: loading keys may run a KMS command, so not here.
        threading.Thread(target=reload, name="kbs-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_sighup)
