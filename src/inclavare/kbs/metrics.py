"""Prometheus metrics at ``/metrics``, in trustee's metric families (kbs/docs/prometheus.md).

Same names and types as trustee's KBS so dashboards carry over; where
trustee's HTTP families have no labels we add ``route`` (the route
*template*, so cardinality stays bounded), ``method`` and ``status`` —
``sum without (...)`` gives trustee's series back. Additions of our own:
``kbs_rate_limited_total`` and ``kbs_resource_releases_total``.
Each broker has its own registry, so several can live in one process.

The workers of ``kbs serve --workers`` share theirs: each writes its values
to files in one directory (prometheus_client's multiprocess mode,
``shared_dir``) and a scrape, whichever worker answers it, adds up every
worker's, those of workers that died and were replaced included, so a
counter never goes back. ``kbs_http_active_connections`` counts the live
workers' requests only, and ``kbs_build_info`` is one series.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

# trustee: "Buckets: 0.5ms, 1ms, 5ms, 10ms, 50ms, 500ms, 1s".
DURATION_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.5, 1.0)
SIZE_BUCKETS = (32, 128, 512, 2048, 8192)


class KbsMetrics:
    def __init__(self, version: str = "0.1.0", shared_dir: str | None = None) -> None:
        """``shared_dir``: the workers' directory; it makes every metric of *this process* created from now
        on write there (prometheus_client chooses its value class process-wide): one worker, one broker."""
        self.shared_dir = shared_dir
        if shared_dir is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_dir  # where the value class puts its files
            values.ValueClass = values.MultiProcessValue()
        r = self.registry = CollectorRegistry()
        build = Gauge("kbs_build_info", "KBS build information", ["version"], registry=r, multiprocess_mode="max")
        build.labels(version).set(1)
        self.requests = Counter(
            "kbs_http_requests", "HTTP requests to KBS endpoints", ["route", "method", "status"], registry=r
        )
        self.duration = Histogram(
            "kbs_http_request_duration_seconds",
            "Request handling time",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.request_size = Histogram(
            "kbs_http_request_size_bytes", "Request body sizes", buckets=SIZE_BUCKETS, registry=r
        )
        self.response_size = Histogram(
            "kbs_http_response_size_bytes", "Response body sizes", buckets=SIZE_BUCKETS, registry=r
        )
        self.active = Gauge(
            "kbs_http_active_connections", "Requests being processed", registry=r, multiprocess_mode="livesum"
        )
        self.auth_requests = Counter("kbs_auth_requests", "RCAR /auth requests", registry=r)
        self.auth_successes = Counter("kbs_auth_successes", "Successful /auth requests", registry=r)
        self.auth_errors = Counter("kbs_auth_errors", "Failed /auth requests", registry=r)
        self.attestation_requests = Counter("kbs_attestation_requests", "RCAR /attest requests", registry=r)
        self.attestation_successes = Counter(
            "kbs_attestation_successes", "Successful attestations", ["tee_type"], registry=r
        )
        self.attestation_failures = Counter(
            "kbs_attestation_failures", "Refused attestations", ["tee_type"], registry=r
        )
        self.attestation_errors = Counter("kbs_attestation_errors", "Malformed /attest requests", registry=r)
        self.policy_evaluations = Counter("kbs_policy_evaluations", "Resource policy evaluations", registry=r)
        self.policy_approvals = Counter("kbs_policy_approvals", "Requests approved by policy", registry=r)
        self.policy_violations = Counter("kbs_policy_violations", "Requests denied by policy", registry=r)
        self.policy_errors = Counter("kbs_policy_errors", "Policy evaluation errors", registry=r)
        # By repository, not trustee's full resource_path: /metrics is unauthenticated, and
        # resource names must not leak to whoever can reach it (a denied GET tells nothing either).
        self.resource_reads = Counter("kbs_resource_reads", "Resource reads", ["repository"], registry=r)
        self.resource_writes = Counter("kbs_resource_writes", "Resource writes", ["repository"], registry=r)
        self.releases = Counter("kbs_resource_releases", "Release records written (replays excluded)", registry=r)
        self.rate_limited = Counter("kbs_rate_limited", "Requests refused with 429", ["key"], registry=r)

    def observe(
        self, route: str, method: str, status: int, seconds: float, request_bytes: int, response_bytes: int
    ) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route).observe(seconds)
        self.request_size.observe(request_bytes)
        self.response_size.observe(response_bytes)

    def render(self) -> tuple[bytes, str]:
        if self.shared_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.shared_dir)
        return generate_latest(every_worker), CONTENT_TYPE_LATEST
