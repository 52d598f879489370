"""The pool's counters, and Prometheus' text format for them on ``GET /metrics``.

Exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
``# HELP`` and ``# TYPE`` per family, then ``name{label="value"} number``
lines; a histogram is its cumulative ``_bucket{le=...}`` lines, ``_sum``
and ``_count``. Every series is labelled by the pool key's first 16 hex
digits, the runtime and the bundle. A miss for a key no entry prepares is
counted under that key with empty runtime and bundle; at most
:data:`MAX_UNKNOWN` such keys get a series of their own, the rest are
counted under ``key="other"``, so clients cannot grow the page without
bound. The server is stdlib's, one thread per request, and serves only
``/metrics`` (anything else is 404).
"""

from __future__ import annotations

import dataclasses
import http.server
import logging
import socket
import threading

from ..errors import EpmError
from .template import Template

log = logging.getLogger("inclavare.epm.pool")
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MAX_UNKNOWN = 64
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclasses.dataclass
class Series:
    labels: str  # key="…",runtime="…",bundle="…"
    known: bool = True  # False: a key no entry prepares (claimed anyway)
    hits: int = 0
    misses: int = 0
    ready: int = 0
    failures: int = 0
    prepare_seconds: float = 0.0  # the instances' own preparation time, summed
    fill_sum: float = 0.0
    fill_buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * len(BUCKETS))
    fill_count: int = 0

    def observe_fill(self, seconds: float, prepared: float) -> None:
        self.fill_sum += seconds
        self.fill_count += 1
        self.prepare_seconds += prepared
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.fill_buckets[i] += 1


class Metrics:
    """Per-key series; every method takes the lock, so the HTTP thread reads a consistent page."""

    def __init__(self, templates: tuple[Template, ...]) -> None:
        self.lock = threading.Lock()
        self.series = {t.key: Series(_labels(t.short, t.runtime, t.bundle)) for t in templates}
        self._unknown = 0

    def of(self, key: str) -> Series:
        """The series of `key`, made for an unknown key (callers hold the lock)."""
        series = self.series.get(key)
        if series is None and self._unknown >= MAX_UNKNOWN:
            key = "other"
            series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(_labels(key[:16], "", ""), known=False)
            self._unknown += 1
        return series

    def render(self) -> bytes:
        with self.lock:
            rows = list(self.series.values())
            out: list[str] = []
            simple = (("hits_total", "counter", "claims answered with an instance", "hits"),
                      ("misses_total", "counter", "claims answered without one", "misses"),
                      ("ready", "gauge", "instances prepared and waiting", "ready"),
                      ("fill_failures_total", "counter", "preparations that failed", "failures"),
                      ("prepare_seconds_total", "counter",
                       "the instances' own preparation time (fill_seconds less epm's spawn overhead)",
                       "prepare_seconds"))  # fmt: skip
            for name, kind, doc, attr in simple:
                out += [f"# HELP epm_pool_{name} {doc}", f"# TYPE epm_pool_{name} {kind}"]
                out += [f"epm_pool_{name}{{{s.labels}}} {_number(getattr(s, attr))}" for s in rows]
            out += ["# HELP epm_pool_fill_seconds time from spawning an instance to its ready, as epm saw it",
                    "# TYPE epm_pool_fill_seconds histogram"]  # fmt: skip
            for s in rows:
                for bound, count in zip(BUCKETS, s.fill_buckets, strict=True):
                    out.append(f'epm_pool_fill_seconds_bucket{{{s.labels},le="{bound}"}} {count}')
                out.append(f'epm_pool_fill_seconds_bucket{{{s.labels},le="+Inf"}} {s.fill_count}')
                out.append(f"epm_pool_fill_seconds_sum{{{s.labels}}} {_number(s.fill_sum)}")
                out.append(f"epm_pool_fill_seconds_count{{{s.labels}}} {s.fill_count}")
        return ("\n".join(out) + "\n").encode()


class MetricsServer:
    """``GET /metrics`` on `address` (host:port, [v6]:port), in a thread of its own."""

    def __init__(self, address: str, metrics: Metrics) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self._bind = (host.strip("[]"), int(port))
        self._metrics = metrics
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server_class = _HTTPServer6 if ":" in self._bind[0] else _HTTPServer
        try:
            self._httpd = httpd = server_class(self._bind, _Handler)
        except OSError as exc:
            raise EpmError(self.address, f"cannot serve the pool's metrics: {exc.strerror or exc}") from None
        httpd.metrics = self._metrics
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="epm-metrics", daemon=True)
        self._thread.start()
        log.info("pool metrics at http://%s/metrics", self.address)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    metrics: Metrics


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "inclavare-epm"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        assert isinstance(self.server, _HTTPServer)
        body = self.server.metrics.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics: %s %s", self.address_string(), format % args)


def _labels(key: str, runtime: str, bundle: str) -> str:
    return f'key="{_escape(key)}",runtime="{_escape(runtime)}",bundle="{_escape(bundle)}"'


def _escape(value: str) -> str:
    # The format's label value escapes: backslash, double quote, line feed.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(round(value, 6))
