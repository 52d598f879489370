"""The key broker(s) an enclave trusts, named in its manifest and so measured.

A manifest's ``[kbs]`` table pins where the enclave's secrets may come from,
as Gramine's secret provisioning and Occlum's init-RA build the broker's CA
into the measured image::

    [kbs]
    urls = ["https://kbs-a.example:8443", "https://kbs-b.example:8443"]   # the replicas
    cacert = "/app/kbs-ca.pem"        # a trusted file: the broker's certificate chains to it
    pin_sha256 = ["<base64>"]         # and/or SHA-256 of the broker's SubjectPublicKeyInfo

``cacert`` must be one of ``trusted_files``, so its bytes are measured with
the rest; ``pin_sha256`` is RFC 7469's ``pin-sha256`` (base64 of the SHA-256
of the DER SubjectPublicKeyInfo, as curl's ``--pinnedpubkey sha256//...``).
With both, the certificate must chain to the CA *and* carry a pinned key.
The host chooses among the pinned URLs (``enclave.kbs.url``), never beyond
them (enclave/provision/, docs/kbs.md "Trust model").

URLs are https only (TLS ends inside the enclave side; a broker reached in
clear text would show its messages to the host) and compared in one
spelling, :func:`normalize_url`: lower-case host, explicit port, no trailing
slash, no user, query or fragment.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from urllib.parse import urlsplit

from ._fields import Table, check_string, rootfs_path

_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*")


@dataclasses.dataclass(frozen=True)
class BrokerPin:
    urls: tuple[str, ...]  # normalised, sorted (a set: order is the host's choice)
    cacert: str | None  # a rootfs path listed in trusted_files
    pin_sha256: tuple[bytes, ...]  # SPKI digests, sorted


def normalize_url(url: str) -> str:
    """``https://host:port[/path]``; ValueError (with the reason) for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme.lower() != "https":
        raise ValueError(f"{url!r} must be https: TLS ends inside the enclave")
    if not parts.hostname or any(c in url for c in "@?#"):
        raise ValueError(f"{url!r} must be https://host[:port][/path], without user, query or fragment")
    path = parts.path.rstrip("/")
    if not _PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise ValueError(f"{url!r}: the path may hold only letters, digits and ._~- segments")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port or 443}{path}"


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a normalised URL, the host without IPv6 brackets."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    assert host is not None  # normalize_url made it so
    assert port is not None
    return host, port


def parse_broker(top: Table, trusted: set[str]) -> BrokerPin | None:
    """The ``[kbs]`` table of a manifest, or None without one."""
    table = top.sub("kbs")
    if table is None:
        return None
    table.reject_unknown(("urls", "cacert", "pin_sha256"))
    urls = []
    for i, url in enumerate(table.strings("urls")):
        try:
            urls.append(normalize_url(url))
        except ValueError as exc:
            raise table.error(f"urls[{i}]", str(exc)) from None
    if not urls:
        raise table.error("urls", "must name at least one broker")
    cacert = rootfs_path(table, "cacert", table.data["cacert"]) if table.has("cacert") else None
    if cacert is not None and cacert not in trusted:
        raise table.error("cacert", f"{cacert} must be listed in trusted_files (its bytes are measured)")
    pins = tuple(_pin(table, f"pin_sha256[{i}]", p) for i, p in enumerate(table.array("pin_sha256")))
    if cacert is None and not pins:
        raise table.error("", "needs cacert or pin_sha256: the enclave must be able to recognise its broker")
    return BrokerPin(tuple(sorted(set(urls))), cacert, tuple(sorted(set(pins))))


def _pin(table: Table, key: str, value: object) -> bytes:
    text = check_string(table, key, value)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise table.error(key, "must be base64 of a SHA-256 digest (RFC 7469 pin-sha256)")
    return raw
