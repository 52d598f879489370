"""``kbs serve --workers N``: several worker processes sharing one listening socket and one database.

One Python process runs one request's Python at a time (the GIL), so a
broker in one process uses one core. Here the parent binds the socket,
checks the TLS files and opens the storage once — so a bad config is one
located error, not N — closes it again, and forks N workers (fork, not
spawn: nothing runs in the parent but this supervisor, no thread exists
yet). Each worker opens its own storage (an SQLite connection or a
PostgreSQL connection must not cross a fork) and runs uvicorn on the
inherited socket; the kernel gives each new connection to one worker
waiting in accept.

Everything a request depends on is in the database, as for replicas
(docs/kbs.md, "Storage, replicas"): a session authed by one worker is
attested on another, and a nonce is single-use across workers by the
same conditional update that makes it single-use across replicas
(storage/sql.py ``finish_attestation``). What is per worker, as per
replica: in-memory rate-limit buckets (``rate_limit.shared = true`` for
one limit across workers). The ``/metrics`` values are the broker's: the
workers write them to one private directory that the parent makes (0700,
removed when it stops) and any worker's scrape adds them all up
(:mod:`..metrics`).

The parent forwards SIGTERM/SIGINT (graceful stop: in-flight requests
finish) and SIGHUP (each worker reloads ``storage.kek``) and restarts a
worker that dies (killed, or failing while it serves); a worker that
cannot build its service at all is a start-up failure, and the broker
stops with exit status 1.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from types import FrameType

from prometheus_client import multiprocess

from ..config import KbsConfig
from ..errors import ConfigError
from ..metrics import KbsMetrics
from ..service import KbsService
from .notify import sd_notify
from .serve import _reload_on_sighup, _run, listen, write_ready

log = logging.getLogger("inclavare.kbs")
START_FAILED = 3  # a worker's exit status when it could not open what the parent opened a moment before
RESTART_BACKOFF = 1.0


def check_workers(config: KbsConfig, workers: int) -> None:
    """Refuse what several processes cannot share: a private database, a token key each would make up."""
    if workers < 1:
        raise ConfigError("--workers", f"must be at least 1, not {workers}", config.source)
    if workers == 1:
        return
    if config.storage.type == "sqlite" and config.storage.path == ":memory:":
        raise ConfigError("storage.path", '":memory:" is private to one process; --workers needs a file', config.source)
    if config.token.signing_key is None:
        why = "--workers needs a token key they share (inclavare kbs keygen --token), not one each"
        raise ConfigError("token.signing_key", why, config.source)


def serve_workers(
    config: KbsConfig, workers: int, *, ready_file: str | None = None, config_path: str | None = None
) -> int:
    """Serve with ``workers`` processes until SIGTERM/SIGINT; the exit status (0, or 1 if a worker failed to start)."""
    check_workers(config, workers)
    sock, tls = listen(config)
    limits = config.rate_limit
    if workers > 1 and limits.enabled and not limits.shared:
        log.warning("rate limits are per worker (in-memory buckets): a client may get up to %dx the rate", workers)
    try:
        KbsService.from_config(config).close()  # schema, keys, collateral: checked once, here
        return Supervisor(config, sock, tls, config_path).run(workers, ready_file)
    finally:
        sock.close()


class Supervisor:
    def __init__(self, config: KbsConfig, sock: socket.socket, tls: bool, config_path: str | None) -> None:
        self.config = config
        self.sock = sock
        self.tls = tls
        self.config_path = config_path
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.metrics_dir = ""

    def run(self, workers: int, ready_file: str | None) -> int:
        self.metrics_dir = tempfile.mkdtemp(prefix="inclavare-kbs-metrics-")  # 0700
        try:
            return self._supervise(workers, ready_file)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _supervise(self, workers: int, ready_file: str | None) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        for _ in range(workers):
            self._spawn()
        host, port = self.config.http.host, self.sock.getsockname()[1]
        log.info("KBS (replica %s) listening on %s:%d with %d workers", self.config.audit.replica, host, port, workers)
        if ready_file is not None:
            write_ready(ready_file, host, port)
        scheme = "https" if self.tls else "http"
        sd_notify(f"READY=1\nSTATUS=listening on {scheme}://{host}:{port} with {workers} workers")
        status = 0
        while self.children:
            pid, code = os.wait()
            started = self.children.pop(pid, None)
            if started is None:
                continue
            multiprocess.mark_process_dead(pid, self.metrics_dir)  # its requests in flight are no longer active
            if self.stopping:
                continue
            log.error("KBS worker %d exited (%s)", pid, _describe(code))
            if os.WIFEXITED(code) and os.WEXITSTATUS(code) == START_FAILED:
                log.error("KBS worker could not start: stopping the broker")
                status = 1
                self._stop()
                continue
            if time.monotonic() - started < RESTART_BACKOFF:  # dying at once, again: do not spin
                time.sleep(RESTART_BACKOFF)
            self._spawn()
        return status

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(self._worker())
        self.children[pid] = time.monotonic()

    def _worker(self) -> int:
        """The child: its own storage, uvicorn on the shared socket; never returns into the parent's stack."""
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own; SIGHUP below
            service = KbsService.from_config(self.config, metrics=KbsMetrics(shared_dir=self.metrics_dir))
        except BaseException as exc:
            log.error("KBS worker %d: %s", os.getpid(), exc)
            return START_FAILED
        try:
            if self.config_path is not None:
                _reload_on_sighup(service, self.config_path)
            try:
                _run(self.config, service, self.sock, self.tls, None, notify=False)
            finally:
                service.close()
            return 0
        except BaseException as exc:  # one line in the log, and a status the parent reads
            log.error("KBS worker %d: %s", os.getpid(), exc)
            return 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._forward(signum)
            return
        self._stop()

    def _stop(self) -> None:
        if not self.stopping:
            sd_notify("STOPPING=1")
        self.stopping = True
        self._forward(signal.SIGTERM)

    def _forward(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"
